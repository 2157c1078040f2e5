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

Result EarlyExit::Run(const int8_t* input) {
  Result r = {0, 0, 0};
  const int8_t* features = nullptr;
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
    ArgMax(scores, spec_.classes, &r.label, &r.score);
    r.exit = i;
    const bool last = i + 1 == spec_.segments;
    const bool leave = last || (s.signal ? ExitScore(*s.signal, scores, spec_.classes) >= s.signal->threshold
                                         : static_cast<double>(r.score) >= s.threshold);
    // the map stays put: nothing writes the arena until HandOver
    features = leave ? nullptr : it.output(s.features_output)->data.int8;
    if (clock_) ticks_[i] = clock_() - start;
    if (observer_) observer_(i, scores, spec_.classes, features, leave ? 0 : s.feature_bytes);
    if (leave) return r;
  }
  return r;
}

}  // namespace trecx
