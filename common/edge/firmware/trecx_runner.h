// trecx early-exit runner over TensorFlow Lite Micro: a model split at its k early exits into k + 1 int8
// segments (exported by `python -m common export_sources`), run one after another in ONE tensor arena.
//
//   #include "trecx_runner.h"
//   #include "trecx_model.h"                       // generated: the graphs, thresholds and hand-over rules
//   alignas(16) static uint8_t arena[trecx_model::kArenaBytes];
//   static trecx::EarlyExit net(trecx_model::kModel);
//   if (net.Init(arena, sizeof(arena)) != kTfLiteOk) { /* arena too small */ }
//   trecx::Result r = net.Run(input);              // input: int8, quantized as segment 0 expects
//   // r.label: the class; r.exit: 0 .. k-1 an early exit, k the final exit
//
// The segments share one arena through one MicroAllocator (TFLite Micro's multi-tenant allocation): their
// persistent data sit one after another, their activations reuse the same space. The feature map a segment hands
// to the next is moved in place into the next segment's input (nothing writes the arena in between), so the
// early exit needs no copy buffer: its arena is the segments' persistent data plus the largest activations.
// A sample leaves at the first exit whose largest int8 score reaches that exit's threshold, the threshold the
// toolkit certified (rho in the int8 output's units: rho / scale + zero), or, under another exit signal
// (ExitSignal), whose integer score reaches its integer threshold. A field monitor (MonitorSpec) may audit samples
// and fall back after an alarm.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"

namespace trecx {

constexpr int kMaxSegments = 8;  // exits + 1
constexpr int kMaxOps = 32;      // distinct builtin operators of a model
using OpResolver = tflite::MicroMutableOpResolver<kMaxOps>;

// Another exit signal than the largest score (docs/calibration.md, "Exit signals"): the sample leaves when
//   s = t1[q_1] + t2[q_2] + sum_j ts[q_j] + sum_j tr[256 * v_j / v_1] >= threshold,
// q_1 >= q_2 the exit's two largest int8 scores, v = max(q - zero, 0); t1, t2, ts indexed by q + 128, tr by
// 0 .. 256 (256 when v_1 is 0); nullptr where the signal uses no such table.
struct ExitSignal {
  const int32_t* t1;
  const int32_t* t2;
  const int32_t* ts;
  const int32_t* tr;
  int zero;           // the exit's int8 zero point
  int64_t threshold;  // the certified rho as an integer score (evaluation.signals.Signal.int_threshold)
};
int64_t ExitScore(const ExitSignal& signal, const int8_t* scores, int classes);

// The field monitor (docs/field.md; the Python runtime's evaluation.monitor, computed alike to the bit): a seeded
// xorshift32 draw per sample audits a fraction of the samples; an audited sample that left early runs on to the
// final exit, and the monitor bets, per audit, against "the early class differs from the final one no more often
// than the certified level": wealth_j = (wealth_j + 1 / (t (t + 1))) * (disagree ? up_j : down_j),
// statistic = sum_j wealth_j / bets + 1 / (t + 1), in IEEE-754 double. At statistic >= alarm_at (1 / alpha) the
// alarm latches: from the next sample on the fallback thresholds apply (nullptr: the full network) and no sample
// is audited.
constexpr int kMaxBets = 8;
struct MonitorSpec {
  uint32_t seed;                    // the xorshift32 state at the start (nonzero)
  uint64_t audit_cut;               // a sample is audited when its draw < audit_cut (2^32: every sample)
  int bets;
  const double* up;                 // per bet: the wealth factor on a disagreement
  const double* down;               // ... and on an agreement
  double alarm_at;                  // 1 / alpha
  const double* fallback;           // per early exit: the int8 threshold after an alarm; nullptr: the full network
  const int64_t* fallback_signal;   // per early exit under an ExitSignal: its integer threshold after an alarm
};
// What the user's firmware reads (EarlyExit::monitor()).
struct MonitorState {
  uint32_t rng;
  uint32_t samples;        // samples seen
  uint32_t audits;         // samples audited
  uint32_t audited_early;  // audited samples that had left early (each ran the rest of the network)
  uint32_t disagreements;  // audits whose early class was not the final exit's
  int32_t alarm_sample;    // the sample (0-based) the alarm came at; -1: none
  double statistic;        // the evidence against the certified level (1 at the start)
  double wealth[kMaxBets];
};
enum Status { kUnmonitored = 0, kWatching = 1, kAlarm = 2, kFallback = 3 };

// One segment: graph i maps the previous segment's feature map (the input, for the first) to its exit's scores
// and, except for the last, the feature map the next segment reads.
struct Segment {
  const unsigned char* graph;  // the .tflite flatbuffer (16-byte aligned)
  int exit_output;             // output index of the exit's int8 scores (the final exit's, in the last)
  int features_output;         // output index of the map handed to the next segment (-1 in the last)
  int feature_bytes;           // its size in bytes (int8)
  double threshold;            // leave here when the largest int8 score >= threshold (unused in the last)
  bool requantize;             // the next segment reads the map with other int8 parameters
  float scale_out, scale_in;   // ... then x = (q - zero_out) * scale_out, q' = round(x / scale_in) + zero_in
  int zero_out, zero_in;
  const ExitSignal* signal;    // another exit signal than the largest score; nullptr: the largest score
};

struct ModelSpec {
  int segments;            // k + 1
  const Segment* segment;
  int classes;
  int input_bytes;         // int8 input of segment 0
  void (*add_ops)(OpResolver&);  // registers the builtin operators the graphs use
  const MonitorSpec* monitor = nullptr;  // the field monitor; nullptr: none
};

// Called after segment i ran, outside its ticks: its exit's int8 scores and, when the sample goes on, the feature map
// it hands over (nullptr and 0 in the segment the sample leaves at). For checks: the benchmark hashes both.
using Observer = void (*)(int segment, const int8_t* scores, int classes, const int8_t* features, int feature_bytes);

struct Result {
  int label;  // the predicted class
  int exit;   // 0 .. k-1: that early exit; k: the final exit
  int score;  // the largest int8 score of that exit
  int status;    // Status: kUnmonitored, or kWatching, kAlarm (raised at this sample), kFallback (after it)
  bool audited;  // the monitor audited this sample (when it left early, the rest of the network ran too)
};

class EarlyExit {
 public:
  explicit EarlyExit(const ModelSpec& spec) : spec_(spec) {}
  // Allocates every segment in `arena`; profilers: none, or one per segment (a profiled TFLM build reports
  // each operator to it). kTfLiteError when the arena is too small or a graph does not fit the spec.
  TfLiteStatus Init(uint8_t* arena, size_t arena_bytes,
                    tflite::MicroProfilerInterface* const* profilers = nullptr);
  // One inference on `input` (spec.input_bytes int8 values).
  Result Run(const int8_t* input);
  size_t arena_used_bytes() const;
  // An up-counting clock: then segment_ticks(i) is what segment i took in the last Run (its hand-over copy
  // included; 0 when it did not run).
  void SetClock(uint32_t (*clock)()) { clock_ = clock; }
  uint32_t segment_ticks(int i) const { return ticks_[i]; }
  void SetObserver(Observer observer) { observer_ = observer; }
  const MonitorState& monitor() const { return state_; }
  // With a clock: what the monitor's own work (the audit draw, the statistic) took in the last Run.
  uint32_t monitor_ticks() const { return monitor_ticks_; }

 private:
  const ModelSpec& spec_;
  OpResolver resolver_;
  tflite::MicroAllocator* allocator_ = nullptr;
  tflite::MicroInterpreter* interpreters_[kMaxSegments] = {};
  alignas(tflite::MicroInterpreter) uint8_t storage_[kMaxSegments][sizeof(tflite::MicroInterpreter)];
  uint32_t (*clock_)() = nullptr;
  Observer observer_ = nullptr;
  uint32_t ticks_[kMaxSegments] = {};
  MonitorState state_ = {};
  uint32_t monitor_ticks_ = 0;
  bool Leaves(int i, const int8_t* scores, int score) const;
  bool Observe(bool early, bool disagree);
};

}  // namespace trecx
