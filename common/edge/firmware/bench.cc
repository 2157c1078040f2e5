// The benchmark firmware of an exported model (common/edge/toolchain.py builds it from the exported sources:
// trecx_model.h/.cc and trecx_runner.h/.cc, exactly as a user's firmware would take them). For each sample read
// from a host file through semihosting (int8, quantized for segment 0) it runs the early-exit runner and prints
// one line: the exit, the class and the instructions of each segment (the board's timer under QEMU -icount
// shift=0 counts instructions), and one line with the FNV-1a hash of every int8 byte its segments output (each
// exit's scores, each feature map handed over), hashed outside the timed segments. Built with TRECX_PROFILE (a profiled TFLM build), it also prints each
// operator's instructions per segment, summed over the samples. The baseline is exported and run the same way,
// as a model with no early exit.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "trecx_model.h"
#include "trecx_runner.h"

extern "C" void initialise_monitor_handles(void);

namespace {

// CMSDK APB timer 0: CTRL at +0, VALUE at +4 (counts down), RELOAD at +8.
volatile uint32_t* const kTimer = reinterpret_cast<volatile uint32_t*>(TRECX_TIMER_BASE);
void TimerStart() {
  kTimer[2] = 0xFFFFFFFFu;
  kTimer[1] = 0xFFFFFFFFu;
  kTimer[0] = 1u;
}
uint32_t Clock() { return ~kTimer[1]; }  // counts up

// FNV-1a (32 bit) of the bytes the segments of one sample output, in the order they ran (edge/board_check.py).
uint32_t g_hash = 0;
void Hash(const int8_t* p, int n) {
  for (int i = 0; i < n; ++i) {
    g_hash ^= static_cast<uint8_t>(p[i]);
    g_hash *= 16777619u;
  }
}
void Observe(int, const int8_t* scores, int classes, const int8_t* features, int feature_bytes) {
  Hash(scores, classes);
  if (features != nullptr) Hash(features, feature_bytes);
}

#if TRECX_PROFILE
constexpr int kMaxOps = 160;
// Sums each operator's ticks over every Invoke (operators run in the same order each time).
class OpProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    if (next_ >= kMaxOps) return kMaxOps;
    tags_[next_] = tag;
    start_[next_] = Clock();
    return next_++;
  }
  void EndEvent(uint32_t handle) override {
    if (handle < kMaxOps) ticks_[handle] += Clock() - start_[handle];
  }
  void NewInvoke() {
    if (next_ > ops_) ops_ = next_;
    next_ = 0;
  }
  void Print(int segment) {
    NewInvoke();
    for (uint32_t i = 0; i < ops_; ++i) {
      printf("P %d %lu %s %llu\n", segment, static_cast<unsigned long>(i), tags_[i],
             static_cast<unsigned long long>(ticks_[i]));
    }
  }
 private:
  const char* tags_[kMaxOps] = {};
  uint32_t start_[kMaxOps] = {};
  uint64_t ticks_[kMaxOps] = {};
  uint32_t next_ = 0, ops_ = 0;
};
OpProfiler g_profilers[trecx::kMaxSegments];
tflite::MicroProfilerInterface* g_profiler_list[trecx::kMaxSegments];
#endif

alignas(16) uint8_t g_arena[trecx_model::kArenaBytes];
alignas(16) int8_t g_sample[trecx_model::kInputBytes];
trecx::EarlyExit g_net(trecx_model::kModel);

}  // namespace

int main() {
  initialise_monitor_handles();
  TimerStart();
  const int segments = trecx_model::kModel.segments;
  tflite::MicroProfilerInterface* const* profilers = nullptr;
#if TRECX_PROFILE
  for (int i = 0; i < segments; ++i) g_profiler_list[i] = &g_profilers[i];
  profilers = g_profiler_list;
#endif
  if (g_net.Init(g_arena, sizeof(g_arena), profilers) != kTfLiteOk) {
    printf("E arena\n");
    return 2;
  }
  g_net.SetClock(Clock);
  g_net.SetObserver(Observe);
  FILE* samples = fopen(TRECX_SAMPLES_FILE, "rb");
  if (samples == nullptr) {
    printf("E samples file\n");
    return 4;
  }
  printf("A %lu %lu\n", static_cast<unsigned long>(g_net.arena_used_bytes()),
         static_cast<unsigned long>(sizeof(g_arena)));
  for (int s = 0; s < TRECX_SAMPLES; ++s) {
    if (fread(g_sample, 1, sizeof(g_sample), samples) != sizeof(g_sample)) {
      printf("E samples file\n");
      return 4;
    }
#if TRECX_PROFILE
    for (int i = 0; i < segments; ++i) g_profilers[i].NewInvoke();
#endif
    g_hash = 2166136261u;
    const trecx::Result r = g_net.Run(g_sample);
    if (r.label < 0) {
      printf("E invoke\n");
      return 3;
    }
    printf("S %d %d %d", s, r.exit, r.label);
    for (int i = 0; i < segments; ++i) printf(" %lu", static_cast<unsigned long>(g_net.segment_ticks(i)));
    printf("\nH %d %08lx\n", s, static_cast<unsigned long>(g_hash));
    if (trecx_model::kModel.monitor != nullptr) {  // the monitor's status and statistic, to the bit
      uint64_t bits;
      const double statistic = g_net.monitor().statistic;
      memcpy(&bits, &statistic, sizeof(bits));
      printf("M %d %d %d %08lx%08lx %lu\n", s, r.status, r.audited ? 1 : 0, static_cast<unsigned long>(bits >> 32),
             static_cast<unsigned long>(bits & 0xFFFFFFFFu), static_cast<unsigned long>(g_net.monitor_ticks()));
    }
  }
  if (trecx_model::kModel.monitor != nullptr) {
    const trecx::MonitorState& m = g_net.monitor();
    printf("C %lu %lu %lu %lu %ld %lu\n", static_cast<unsigned long>(m.samples), static_cast<unsigned long>(m.audits),
           static_cast<unsigned long>(m.audited_early), static_cast<unsigned long>(m.disagreements),
           static_cast<long>(m.alarm_sample), static_cast<unsigned long>(sizeof(trecx::MonitorState)));
  }
#if TRECX_PROFILE
  for (int i = 0; i < segments; ++i) g_profilers[i].Print(i);
#endif
  printf("D\n");
  return 0;
}
