// MaxPool2D kernels: one thread per output row (b, c, oh) in the forward pass, one per output element
// in the backward scatter.
#include "mimic/nn/layers/maxpool2d.hpp"

namespace mimic::nn {

void maxpool2d_forward(const Matrix& x, Shape in, int k, const IntMatrix& arg, const Matrix& y) {
    const std::int64_t B = x.extent(0);
    const int C = in.c, H = in.h, W = in.w, OH = H / k, OW = W / k;
    MIMIC_REQUIRE(std::int64_t(x.extent(1)) == in.size() && std::int64_t(y.extent(1)) == std::int64_t(C) * OH * OW &&
                      arg.extent(0) >= x.extent(0) && arg.extent(1) == y.extent(1),
                  "maxpool2d_forward: shape mismatch");
    Kokkos::parallel_for(
        "mimic::nn::pool::forward", RangePolicy(0, B * C * OH), KOKKOS_LAMBDA(const std::int64_t r) {
            const std::int64_t b = r / (std::int64_t(C) * OH);
            const int c = int((r / OH) % C), oh = int(r % OH);
            const float* xs = x.data() + b * C * H * W;
            for (int ow = 0; ow < OW; ++ow) {
                int best = (c * H + oh * k) * W + ow * k;
                float m = xs[best];
                for (int kh = 0; kh < k; ++kh)
                    for (int kw = 0; kw < k; ++kw) {
                        const int i = (c * H + oh * k + kh) * W + ow * k + kw;
                        if (xs[i] > m) {
                            m = xs[i];
                            best = i;
                        }
                    }
                const std::int64_t o = (std::int64_t(c) * OH + oh) * OW + ow;
                y(b, o) = m;
                arg(b, o) = best;
            }
        });
}

void maxpool2d_backward(const Matrix& dy, const IntMatrix& arg, const Matrix& dx) {
    const std::int64_t B = dy.extent(0), O = dy.extent(1);
    Kokkos::deep_copy(dx, 0.0f);
    Kokkos::parallel_for(
        "mimic::nn::pool::backward", RangePolicy(0, B * O), KOKKOS_LAMBDA(const std::int64_t i) {
            const std::int64_t b = i / O, o = i % O;
            dx(b, arg(b, o)) = dy(b, o);
        });
}

void MaxPool2D::forward(const Matrix& x, const Matrix& y, const ForwardContext&) {
    const std::int64_t B = x.extent(0), O = out_.size();
    if (std::int64_t(arg_.extent(0)) < B)
        arg_ = IntMatrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "mimic::nn::pool::argmax"), B, O);
    maxpool2d_forward(x, in_, k_, arg_, y);
}

void MaxPool2D::backward(const Matrix&, const Matrix&, const Matrix& dy, const Matrix& dx) {
    if (dx.extent(0) == 0) return;
    MIMIC_REQUIRE(arg_.extent(0) >= dy.extent(0), token_, ": backward before forward");
    maxpool2d_backward(dy, arg_, dx);
}

} // namespace mimic::nn
