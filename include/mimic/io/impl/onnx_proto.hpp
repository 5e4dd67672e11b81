// The ONNX wire format for import and export (src/io/onnx/proto.cpp): .onnx files read and written, a graph's
// constants as doubles, node attributes read and written, initializers written.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io::impl {

/// The number of values of a tensor of shape dims (1 for a scalar).
inline std::int64_t dims_product(const std::vector<std::int64_t>& dims) {
    std::int64_t n = 1;
    for (auto d : dims)
        n *= d;
    return n;
}

/// A constant of the graph (initializer, Constant node or Identity of one) as doubles.
struct Const {
    std::vector<std::int64_t> dims;
    std::vector<double> v;
    std::int64_t size() const { return dims_product(dims); }
};

/// "[1, 2, 3]".
std::string dims_text(const std::vector<std::int64_t>& d);

/// The values of tensor t (float, double, int32 or int64; raw_data or the typed fields); errors name
/// `where` and the tensor.
Const to_const(const onnx::TensorProto& t, const std::string& where);

/// Parses the .onnx file at path into model; errors name the file.
void read_model_file(const std::string& path, onnx::ModelProto& model);

/// Writes model to path atomically (path.partial, then rename); nothing is left at path on error.
void write_model_file(const onnx::ModelProto& model, const std::string& path);

/// Attributes written on node n: a list of integers, one float, one integer.
void set_attr_ints(onnx::NodeProto* n, const char* name, const std::vector<std::int64_t>& v);
void set_attr_float(onnx::NodeProto* n, const char* name, float v);
void set_attr_int(onnx::NodeProto* n, const char* name, std::int64_t v);

/// A float32 initializer of graph g of shape dims (empty: a scalar) from data.
void add_initializer(onnx::GraphProto& g, const std::string& name, const std::vector<std::int64_t>& dims,
                     const float* data);

/// A 1-D int64 initializer of graph g holding values (e.g. a Reshape's target shape); returns its name.
const std::string& add_int64_initializer(onnx::GraphProto& g, const std::string& name,
                                         const std::vector<std::int64_t>& values);

// Attributes of a NodeProto or of the GraphNode that wraps one.
template <class Node>
const onnx::AttributeProto* find_attr(const Node& n, const char* name) {
    for (const auto& a : n.attribute())
        if (a.name() == name) return &a;
    return nullptr;
}
template <class Node>
std::int64_t attr_int(const Node& n, const char* name, std::int64_t def) {
    const auto* a = find_attr(n, name);
    return a ? a->i() : def;
}
template <class Node>
double attr_float(const Node& n, const char* name, double def) {
    const auto* a = find_attr(n, name);
    return a ? double(a->f()) : def;
}
template <class Node>
std::vector<std::int64_t> attr_ints(const Node& n, const char* name) {
    const auto* a = find_attr(n, name);
    return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : std::vector<std::int64_t>{};
}
template <class Node>
std::string attr_string(const Node& n, const char* name, const std::string& def) {
    const auto* a = find_attr(n, name);
    return a ? a->s() : def;
}

} // namespace mimic::io::impl
