// trecx early-exit runner: see trecx_runner.h.
#include "trecx_runner.h"

#include <cmath>
#include <cstring>
#include <new>

namespace trecx {
namespace {

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

// Segment `prev`'s feature map into the next segment's input. Both lie in the shared arena and may overlap: nothing
// has written the arena since `prev` ran, so the map is moved in place (memmove; requantized element by element in
// the order that never reads an element already written), with no copy buffer.
void HandOver(const int8_t* from, int8_t* to, const Segment& prev) {
  const int n = prev.feature_bytes;
  if (!prev.requantize) {
    memmove(to, from, n);
    return;
  }
  // as the Python runtime: dequantize, requantize in float32 (round half to even), clamp
  auto requantize = [&prev](int8_t v) {
    const float x = (static_cast<float>(v) - static_cast<float>(prev.zero_out)) * prev.scale_out;
    float q = nearbyintf(x / prev.scale_in + static_cast<float>(prev.zero_in));
    q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
    return static_cast<int8_t>(q);
  };
  if (to <= from) {
    for (int j = 0; j < n; ++j) to[j] = requantize(from[j]);
  } else {
    for (int j = n - 1; j >= 0; --j) to[j] = requantize(from[j]);
  }
}

}  // namespace

TfLiteStatus EarlyExit::Init(uint8_t* arena, size_t arena_bytes, tflite::MicroProfilerInterface* const* profilers) {
  if (spec_.segments < 1 || spec_.segments > kMaxSegments) return kTfLiteError;
  spec_.add_ops(resolver_);
  allocator_ = tflite::MicroAllocator::Create(arena, arena_bytes);
  if (allocator_ == nullptr) return kTfLiteError;
  if (spec_.monitor != nullptr) {
    const MonitorSpec& m = *spec_.monitor;
    if (m.bets < 1 || m.bets > kMaxBets || m.seed == 0) return kTfLiteError;
    state_.rng = m.seed;
    state_.alarm_sample = -1;
    state_.statistic = 1.0;
  }
  for (int i = 0; i < spec_.segments; ++i) {
    interpreters_[i] = new (storage_[i]) tflite::MicroInterpreter(
        tflite::GetModel(spec_.segment[i].graph), resolver_, allocator_, nullptr,
        profilers == nullptr ? nullptr : profilers[i]);
    if (interpreters_[i]->AllocateTensors() != kTfLiteOk) return kTfLiteError;
    tflite::MicroInterpreter& it = *interpreters_[i];
    const Segment& s = spec_.segment[i];
    const size_t in_bytes = i == 0 ? spec_.input_bytes : spec_.segment[i - 1].feature_bytes;
    if (it.input(0)->bytes != in_bytes || it.output(s.exit_output)->bytes != static_cast<size_t>(spec_.classes) ||
        (i + 1 < spec_.segments && it.output(s.features_output)->bytes != static_cast<size_t>(s.feature_bytes))) {
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

// The exit signal's integer score of one exit's int8 scores (ExitSignal; the Python runtime's
// evaluation.signals.integer_score).
int64_t ExitScore(const ExitSignal& g, const int8_t* q, int n) {
  int first = -129, second = -129;
  for (int j = 0; j < n; ++j) {
    if (q[j] > first) {
      second = first;
      first = q[j];
    } else if (q[j] > second) {
      second = q[j];
    }
  }
  int64_t s = 0;
  if (g.t1) s += g.t1[first + 128];
  if (g.t2 && n > 1) s += g.t2[second + 128];
  const int v1 = first - g.zero;
  for (int j = 0; j < n; ++j) {
    if (g.ts) s += g.ts[q[j] + 128];
    if (g.tr) {
      const int v = q[j] - g.zero > 0 ? q[j] - g.zero : 0;
      s += g.tr[v1 > 0 ? (256 * v) / v1 : 256];
    }
  }
  return s;
}

size_t EarlyExit::arena_used_bytes() const { return interpreters_[0]->arena_used_bytes(); }

// Whether a sample leaves at early exit i: its largest score (or its signal's integer score) reaches the threshold
// in force (the fallback's after an alarm).
bool EarlyExit::Leaves(int i, const int8_t* scores, int score) const {
  const Segment& s = spec_.segment[i];
  const MonitorSpec* m = spec_.monitor;
  const bool fallen = m != nullptr && state_.alarm_sample >= 0;
  if (s.signal) {
    if (fallen && m->fallback_signal == nullptr) return false;
    return ExitScore(*s.signal, scores, spec_.classes) >= (fallen ? m->fallback_signal[i] : s.signal->threshold);
  }
  if (fallen && m->fallback == nullptr) return false;
  return static_cast<double>(score) >= (fallen ? m->fallback[i] : s.threshold);
}

// One audit's outcome into the monitor's statistic (the Python runtime's evaluation.monitor.Watch.observe, in the
// same order of the same double operations); whether the alarm is raised.
bool EarlyExit::Observe(bool early, bool disagree) {
  const MonitorSpec& m = *spec_.monitor;
  const bool d = early && disagree;
  state_.audits += 1;
  state_.audited_early += early ? 1 : 0;
  state_.disagreements += d ? 1 : 0;
  const double t = static_cast<double>(state_.audits);
  const double w = 1.0 / (t * (t + 1.0));
  double total = 0.0;
  for (int j = 0; j < m.bets; ++j) {
    state_.wealth[j] = (state_.wealth[j] + w) * (d ? m.up[j] : m.down[j]);
    total = total + state_.wealth[j];
  }
  state_.statistic = total / static_cast<double>(m.bets) + 1.0 / (t + 1.0);
  if (state_.statistic >= m.alarm_at) {
    state_.alarm_sample = static_cast<int32_t>(state_.samples) - 1;
    return true;
  }
  return false;
}

Result EarlyExit::Run(const int8_t* input) {
  Result r = {0, 0, 0, kUnmonitored, false};
  const int8_t* features = nullptr;
  bool audit = false;
  monitor_ticks_ = 0;
  if (spec_.monitor != nullptr) {
    const uint32_t start = clock_ ? clock_() : 0;
    state_.samples += 1;
    if (state_.alarm_sample < 0) {
      uint32_t x = state_.rng;
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      state_.rng = x;
      audit = static_cast<uint64_t>(x) < spec_.monitor->audit_cut;
    }
    if (clock_) monitor_ticks_ = clock_() - start;
  }
  bool left = false;
  int final_label = 0, final_score = 0;
  for (int i = 0; i < spec_.segments; ++i) ticks_[i] = 0;
  for (int i = 0; i < spec_.segments; ++i) {
    const uint32_t start = clock_ ? clock_() : 0;
    tflite::MicroInterpreter& it = *interpreters_[i];
    const Segment& s = spec_.segment[i];
    int8_t* in = it.input(0)->data.int8;
    if (i == 0) {
      memcpy(in, input, spec_.input_bytes);
    } else {
      HandOver(features, in, spec_.segment[i - 1]);
    }
    if (it.Invoke() != kTfLiteOk) {
      r.label = -1;
      return r;
    }
    const int8_t* scores = it.output(s.exit_output)->data.int8;
    const bool last = i + 1 == spec_.segments;
    ArgMax(scores, spec_.classes, &final_label, &final_score);
    if (!left && (last || Leaves(i, scores, final_score))) {
      left = true;
      r.label = final_label;
      r.score = final_score;
      r.exit = i;
    }
    // an audited sample runs on past its exit; the map stays put: nothing writes the arena until HandOver
    const bool goes_on = !last && (!left || audit);
    features = goes_on ? it.output(s.features_output)->data.int8 : nullptr;
    if (clock_) ticks_[i] = clock_() - start;
    if (observer_) observer_(i, scores, spec_.classes, features, goes_on ? s.feature_bytes : 0);
    if (!goes_on) break;
  }
  if (spec_.monitor == nullptr) return r;
  r.audited = audit;
  const uint32_t start = clock_ ? clock_() : 0;
  const bool raised = audit && Observe(r.exit + 1 < spec_.segments, r.label != final_label);
  if (clock_) monitor_ticks_ += clock_() - start;
  r.status = raised ? kAlarm : (state_.alarm_sample >= 0 ? kFallback : kWatching);
  return r;
}

}  // namespace trecx
