// ONNX protobuf reading shared by the import's passes (src/io/onnx/proto.cpp): constants of a graph as
// doubles (initializers, Constant nodes) and the attributes of its nodes.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mimic::io::impl {

/// A constant of the graph (initializer, Constant node or Identity of one) as doubles.
struct Const {
    std::vector<std::int64_t> dims;
    std::vector<double> v;
    std::int64_t size() const {
        std::int64_t n = 1;
        for (auto d : dims)
            n *= d;
        return n;
    }
};

/// "[1, 2, 3]".
std::string dims_text(const std::vector<std::int64_t>& d);

/// The values of tensor t (float, double, int32 or int64; raw_data or the typed fields); errors name
/// `where` and the tensor.
Const to_const(const onnx::TensorProto& t, const std::string& where);

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
