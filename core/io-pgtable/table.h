// SPDX-License-Identifier: MIT
// Table pages: the DMA memory a walker reads, and what software keeps beside it.
//
// A non-leaf table has a CPU-only array of child pointers beside its entries. Descending
// through it costs one load per level and needs no physical-to-virtual translation, which a
// host without a direct map (and the simulator) cannot do cheaply; the array costs one word per
// entry of non-leaf tables only, about 0.2% of the table memory of a populated address space.
// The child pointer is also what concurrent mappers race for (see engine.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "arch/dma.h"
#include "arch/result.h"

namespace strata {

struct TablePage {
  DmaRegion region;  // the entries, as the hardware walks them
  DmaAllocator* dma;
  TablePage* next_free = nullptr;  // link on an IotlbGather's freelist (never in the page)
  unsigned nptes;
  // One per entry for a non-leaf table, nullptr for a leaf table.
  std::atomic<TablePage*>* children = nullptr;

  uint64_t* ptes() const { return static_cast<uint64_t*>(region.cpu); }
  // Bytes of memory this page costs: the DMA page and the metadata.
  size_t footprint() const;
};

// A zeroed table of `nptes` entries (`bytes` >= nptes * 8, aligned to `bytes`), with a child
// array if `non_leaf`. Two allocations: the metadata (kmalloc) and the page (DMA).
Result<TablePage*> alloc_table_page(DmaAllocator& dma, unsigned nptes, size_t bytes, bool non_leaf);

// Frees `page` and every table below it.
void free_table_tree(TablePage* page);

}  // namespace strata
