// The shape of one sample (channels x height x width), shared by the layers, the spec parser and the
// model without the one including the other.
#pragma once

#include <cstdint>

namespace mimic::nn {

/// Shape of one sample: channels x height x width ((1, 1, D) for flat features).
struct Shape {
    int c = 1, h = 1, w = 1;
    std::int64_t size() const { return std::int64_t(c) * h * w; }
    bool operator==(const Shape& o) const { return c == o.c && h == o.h && w == o.w; }
    bool operator!=(const Shape& o) const { return !(*this == o); }
};

} // namespace mimic::nn
