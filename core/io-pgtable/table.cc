// SPDX-License-Identifier: MIT
#include "core/io-pgtable/table.h"

#include <new>

#include "arch/memory.h"
#include "core/io-pgtable/gather.h"

namespace strata {

size_t TablePage::footprint() const {
  return region.size + sizeof(TablePage) + (children ? nptes * sizeof(children[0]) : 0);
}

Result<TablePage*> alloc_table_page(DmaAllocator& dma, unsigned nptes, size_t bytes,
                                    bool non_leaf) {
  const size_t meta = sizeof(TablePage) + (non_leaf ? nptes * sizeof(std::atomic<TablePage*>) : 0);
  void* mem = kmalloc(meta, alignof(TablePage));
  if (!mem) return Error(-ENOMEM);
  auto region = dma.alloc(bytes, bytes);
  if (!region.ok()) {
    kfree(mem);
    return region.error();
  }
  auto* page = new (mem) TablePage{region.value(), &dma, nullptr, nptes, nullptr};
  if (non_leaf) {
    page->children = reinterpret_cast<std::atomic<TablePage*>*>(page + 1);
    for (unsigned i = 0; i < nptes; i++) new (&page->children[i]) std::atomic<TablePage*>(nullptr);
  }
  return page;
}

void free_table_tree(TablePage* page) {
  if (page->children) {
    for (unsigned i = 0; i < page->nptes; i++)
      if (TablePage* child = page->children[i].load(std::memory_order_relaxed))
        free_table_tree(child);
  }
  page->dma->free(page->region);
  page->~TablePage();
  kfree(page);
}

void IotlbGather::add_freed_table(TablePage* page) {
  page->next_free = freelist_;
  freelist_ = page;
}

void IotlbGather::release_freelist() {
  while (TablePage* page = freelist_) {
    freelist_ = page->next_free;
    free_table_tree(page);
  }
}

}  // namespace strata
