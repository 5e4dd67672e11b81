// ONNX protobuf reading: tensors of a graph (initializers, Constant values) as Const, whatever field or
// raw encoding holds their values.
#include "mimic/io/impl/onnx_proto.hpp"

#include "mimic/core/error.hpp"

#include <cstring>
#include <sstream>

namespace mimic::io::impl {

std::string dims_text(const std::vector<std::int64_t>& d) {
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < d.size(); ++i)
        os << (i ? ", " : "") << d[i];
    os << "]";
    return os.str();
}

namespace {

template <class T>
void append_raw(const std::string& raw, std::vector<double>& out) {
    const size_t n = raw.size() / sizeof(T);
    for (size_t i = 0; i < n; ++i) {
        T x;
        std::memcpy(&x, raw.data() + i * sizeof(T), sizeof(T));
        out.push_back(double(x));
    }
}

} // namespace

Const to_const(const onnx::TensorProto& t, const std::string& where) {
    Const c;
    c.dims.assign(t.dims().begin(), t.dims().end());
    if (t.data_location() == onnx::TensorProto::EXTERNAL)
        fail(where, ": tensor '", t.name(), "' keeps its data in an external file; save the model with all ",
             "tensors inside the .onnx file");
    const bool raw = t.has_raw_data();
    switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
        if (raw)
            append_raw<float>(t.raw_data(), c.v);
        else
            c.v.assign(t.float_data().begin(), t.float_data().end());
        break;
    case onnx::TensorProto::DOUBLE:
        if (raw)
            append_raw<double>(t.raw_data(), c.v);
        else
            c.v.assign(t.double_data().begin(), t.double_data().end());
        break;
    case onnx::TensorProto::INT64:
        if (raw)
            append_raw<std::int64_t>(t.raw_data(), c.v);
        else
            c.v.assign(t.int64_data().begin(), t.int64_data().end());
        break;
    case onnx::TensorProto::INT32:
        if (raw)
            append_raw<std::int32_t>(t.raw_data(), c.v);
        else
            c.v.assign(t.int32_data().begin(), t.int32_data().end());
        break;
    default:
        fail(where, ": tensor '", t.name(), "' has ONNX data type ", t.data_type(),
             "; only float, double, int32 and int64 constants are supported");
    }
    if (std::int64_t(c.v.size()) != c.size())
        fail(where, ": tensor '", t.name(), "' holds ", c.v.size(), " values for shape ", dims_text(c.dims));
    return c;
}

} // namespace mimic::io::impl
