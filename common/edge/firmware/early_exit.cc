// The early-exit firmware: the int8 head and tail of a T-RecX model, and the baseline, over TFLite Micro.
// For every compiled-in sample it runs the head, compares the exit's max int8 score with the deployed
// threshold exactly as the Python runtime does (common/edge/runtime.py), runs the tail only when the sample
// does not exit, then runs the baseline on the same sample. The samples are read one at a time from two host
// files through semihosting (quantized for the head and for the baseline), so flash holds only the program
// and its graphs. It prints, through semihosting, one line per sample with the exit, both classes and the
// instructions of head, tail and baseline, then the per-operator instructions of each graph summed over the
// samples. Generated inputs: model_data.h (common/edge/mcu.py).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"

extern "C" void initialise_monitor_handles(void);

namespace {

// CMSDK APB timer 0: CTRL at +0, VALUE at +4 (counts down), RELOAD at +8. Under qemu -icount shift=0 one
// instruction is 1 ns of virtual time, so a tick is TRECX_NS_PER_TICK instructions.
volatile uint32_t* const kTimer = reinterpret_cast<volatile uint32_t*>(TRECX_TIMER_BASE);
void TimerStart() {
  kTimer[2] = 0xFFFFFFFFu;
  kTimer[1] = 0xFFFFFFFFu;
  kTimer[0] = 1u;
}
inline uint32_t Now() { return kTimer[1]; }

constexpr int kMaxOps = 128;

// Sums each operator's ticks over every Invoke (operators run in the same order each time).
class OpProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    if (next_ >= kMaxOps) return kMaxOps;
    tags_[next_] = tag;
    start_[next_] = Now();
    return next_++;
  }
  void EndEvent(uint32_t handle) override {
    if (handle < kMaxOps) ticks_[handle] += start_[handle] - Now();
  }
  void NewInvoke() {
    if (next_ > ops_) ops_ = next_;
    next_ = 0;
  }
  void Print(const char* graph) {
    NewInvoke();
    for (uint32_t i = 0; i < ops_; ++i) {
      printf("P %s %lu %s %llu\n", graph, static_cast<unsigned long>(i), tags_[i],
             static_cast<unsigned long long>(ticks_[i]));
    }
  }

 private:
  const char* tags_[kMaxOps] = {};
  uint32_t start_[kMaxOps] = {};
  uint64_t ticks_[kMaxOps] = {};
  uint32_t next_ = 0, ops_ = 0;
};

alignas(16) int8_t g_sample[TRECX_INPUT_BYTES];
alignas(16) int8_t g_base_sample[TRECX_INPUT_BYTES];
alignas(16) uint8_t g_arena_head[TRECX_ARENA_HEAD];
alignas(16) uint8_t g_arena_tail[TRECX_ARENA_TAIL];
alignas(16) uint8_t g_arena_base[TRECX_ARENA_BASE];
OpProfiler g_prof_head, g_prof_tail, g_prof_base;

// Index and value of the largest int8 score (the first one on ties, as numpy's argmax).
void ArgMax(const int8_t* v, int n, int* index, int* value) {
  *index = 0;
  *value = v[0];
  for (int i = 1; i < n; ++i) {
    if (v[i] > *value) {
      *value = v[i];
      *index = i;
    }
  }
}

uint32_t Invoke(tflite::MicroInterpreter& interpreter, OpProfiler& profiler, const char* graph) {
  profiler.NewInvoke();
  const uint32_t start = Now();
  if (interpreter.Invoke() != kTfLiteOk) {
    printf("E invoke %s\n", graph);
    exit(3);
  }
  return start - Now();
}

// The head's feature map handed to the tail: as it is when both graphs agree on its scale, else
// dequantized and requantized in float32, as the Python runtime does (numpy rounds half to even).
void HandOver(const int8_t* from, int8_t* to, int n) {
  if (!TRECX_REQUANTIZE) {
    memcpy(to, from, n);
    return;
  }
  for (int i = 0; i < n; ++i) {
    const float x = (static_cast<float>(from[i]) - static_cast<float>(TRECX_FEAT_ZERO_OUT)) * TRECX_FEAT_SCALE_OUT;
    float q = nearbyintf(x / TRECX_FEAT_SCALE_IN + static_cast<float>(TRECX_FEAT_ZERO_IN));
    q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
    to[i] = static_cast<int8_t>(q);
  }
}

}  // namespace

int main() {
  initialise_monitor_handles();
  TimerStart();
  static tflite::MicroMutableOpResolver<TRECX_NUM_OPS> resolver;
  TRECX_ADD_OPS(resolver);
  static tflite::MicroInterpreter head(tflite::GetModel(g_head), resolver, g_arena_head, sizeof(g_arena_head),
                                       nullptr, &g_prof_head);
  static tflite::MicroInterpreter tail(tflite::GetModel(g_tail), resolver, g_arena_tail, sizeof(g_arena_tail),
                                       nullptr, &g_prof_tail);
  static tflite::MicroInterpreter base(tflite::GetModel(g_base), resolver, g_arena_base, sizeof(g_arena_base),
                                       nullptr, &g_prof_base);
  if (head.AllocateTensors() != kTfLiteOk || tail.AllocateTensors() != kTfLiteOk ||
      base.AllocateTensors() != kTfLiteOk) {
    printf("E arena\n");
    return 2;
  }
  FILE* samples = fopen(TRECX_SAMPLES_FILE, "rb");
  FILE* base_samples = fopen(TRECX_BASE_SAMPLES_FILE, "rb");
  if (samples == nullptr || base_samples == nullptr) {
    printf("E samples file\n");
    return 4;
  }
  printf("A %lu %lu %lu\n", static_cast<unsigned long>(head.arena_used_bytes()),
         static_cast<unsigned long>(tail.arena_used_bytes()), static_cast<unsigned long>(base.arena_used_bytes()));
  for (int s = 0; s < TRECX_SAMPLES; ++s) {
    if (fread(g_sample, 1, TRECX_INPUT_BYTES, samples) != TRECX_INPUT_BYTES ||
        fread(g_base_sample, 1, TRECX_INPUT_BYTES, base_samples) != TRECX_INPUT_BYTES) {
      printf("E samples file\n");
      return 4;
    }
    memcpy(head.input(0)->data.int8, g_sample, TRECX_INPUT_BYTES);
    const uint32_t head_ticks = Invoke(head, g_prof_head, "head");
    int label, score;
    ArgMax(head.output(TRECX_HEAD_EXIT)->data.int8, TRECX_CLASSES, &label, &score);
    const bool exits = static_cast<double>(score) >= TRECX_THRESHOLD;  // rho / scale + zero, as the runtime
    uint32_t tail_ticks = 0;
    if (!exits) {
      HandOver(head.output(TRECX_HEAD_FEATURES)->data.int8, tail.input(0)->data.int8, TRECX_FEATURE_BYTES);
      tail_ticks = Invoke(tail, g_prof_tail, "tail");
      ArgMax(tail.output(0)->data.int8, TRECX_CLASSES, &label, &score);
    }
    memcpy(base.input(0)->data.int8, g_base_sample, TRECX_INPUT_BYTES);
    const uint32_t base_ticks = Invoke(base, g_prof_base, "baseline");
    int base_label, base_score;
    ArgMax(base.output(0)->data.int8, TRECX_CLASSES, &base_label, &base_score);
    printf("S %d %d %d %d %lu %lu %lu\n", s, exits ? 1 : 0, label, base_label, static_cast<unsigned long>(head_ticks),
           static_cast<unsigned long>(tail_ticks), static_cast<unsigned long>(base_ticks));
  }
  g_prof_head.Print("head");
  g_prof_tail.Print("tail");
  g_prof_base.Print("baseline");
  printf("D\n");
  return 0;
}
