// SPDX-License-Identifier: MIT
// The hosted OS port: arch/port.h over the C and C++ runtime of a Linux process.
#include "testing/hosted/hosted.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "arch/port.h"

namespace strata::hosted {
namespace {

std::atomic<long> g_fail_nth{-1};
std::atomic<long> g_live{0};
std::atomic<long> g_count{0};

std::mutex g_log_mutex;
std::vector<LogCapture::State*>& captures() {
  static std::vector<LogCapture::State*> v;
  return v;
}

int echo_level() {
  static const int level = [] {
    const char* s = getenv("STRATA_LOG_LEVEL");
    return s ? atoi(s) : 4;
  }();
  return level;
}

// The child's end of panic_message_of: where strata_os_panic writes its message.
int g_panic_fd = -1;

}  // namespace

struct LogCapture::State {
  std::vector<Line> lines;
};

void deliver(int level, std::string_view text) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  for (LogCapture::State* s : captures()) s->lines.push_back({level, std::string(text)});
  if (level <= echo_level())
    fprintf(stderr, "<%d> %.*s\n", level, static_cast<int>(text.size()), text.data());
}

LogCapture::LogCapture() : state_(new State) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  captures().push_back(state_);
}

LogCapture::~LogCapture() {
  {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    auto& v = captures();
    v.erase(std::find(v.begin(), v.end(), state_));
  }
  delete state_;
}

std::vector<LogCapture::Line> LogCapture::lines() const {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  return state_->lines;
}

bool LogCapture::contains(std::string_view needle) const {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  for (const Line& l : state_->lines)
    if (l.text.find(needle) != std::string::npos) return true;
  return false;
}

void fail_kmalloc_nth(long n) { g_fail_nth.store(n); }
long kmalloc_live() { return g_live.load(); }
long kmalloc_count() { return g_count.load(); }

std::string panic_message_of(const std::function<void()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) abort();
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    g_panic_fd = fds[1];
    fn();
    _exit(0);
  }
  close(fds[1]);
  std::string message;
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) message.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return message;
}

}  // namespace strata::hosted

using strata::hosted::g_count;
using strata::hosted::g_fail_nth;
using strata::hosted::g_live;

extern "C" {

void* strata_os_kmalloc(size_t size, size_t align) {
  long nth = g_fail_nth.load(std::memory_order_relaxed);
  while (nth >= 0) {
    if (g_fail_nth.compare_exchange_weak(nth, nth - 1)) {
      if (nth == 0) return nullptr;
      break;
    }
  }
  if (align < sizeof(void*)) align = sizeof(void*);
  void* p = nullptr;
  if (posix_memalign(&p, align, size ? size : 1) != 0) return nullptr;
  g_live.fetch_add(1, std::memory_order_relaxed);
  g_count.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void strata_os_kfree(void* ptr) {
  if (!ptr) return;
  g_live.fetch_sub(1, std::memory_order_relaxed);
  free(ptr);
}

void strata_os_log(int level, const char* text, size_t len) {
  strata::hosted::deliver(level, std::string_view(text, len));
}

uint64_t strata_os_monotonic_ns(void) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

static_assert(sizeof(std::mutex) <= sizeof(strata_os_mutex) &&
                  alignof(std::mutex) <= alignof(strata_os_mutex),
              "std::mutex does not fit the port's mutex storage");

void strata_os_mutex_init(strata_os_mutex* m) { new (m->opaque) std::mutex; }
void strata_os_mutex_destroy(strata_os_mutex* m) {
  std::launder(reinterpret_cast<std::mutex*>(m->opaque))->~mutex();
}
void strata_os_mutex_lock(strata_os_mutex* m) {
  std::launder(reinterpret_cast<std::mutex*>(m->opaque))->lock();
}
void strata_os_mutex_unlock(strata_os_mutex* m) {
  std::launder(reinterpret_cast<std::mutex*>(m->opaque))->unlock();
}

// A user-space process has no interrupts to mask: handlers run on ordinary threads.
unsigned long strata_os_irq_save(void) { return 0; }
void strata_os_irq_restore(unsigned long) {}

void strata_os_panic(const char* message) {
  if (strata::hosted::g_panic_fd >= 0) {
    ssize_t ignored = write(strata::hosted::g_panic_fd, message, strlen(message));
    (void)ignored;
    _exit(70);
  }
  fprintf(stderr, "strata panic: %s\n", message);
  abort();
}

}  // extern "C"
