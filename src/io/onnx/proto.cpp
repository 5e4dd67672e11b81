// The ONNX wire format: .onnx files read and written (atomically), tensors of a graph as Const whatever field
// or raw encoding holds their values, node attributes and initializers written.
#include "mimic/io/impl/onnx_proto.hpp"

#include "mimic/core/error.hpp"
#include "mimic/io/dataset.hpp"

#include <cstring>
#include <fstream>
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

void read_model_file(const std::string& path, onnx::ModelProto& model) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open the ONNX file");
    if (!model.ParseFromIstream(&in)) fail(path, ": not an ONNX model (protobuf parsing failed)");
}

void write_model_file(const onnx::ModelProto& model, const std::string& path) {
    const std::string partial = path + ".partial";
    {
        std::ofstream out(partial, std::ios::binary | std::ios::trunc);
        if (!out) fail(partial, ": cannot create the file");
        if (!model.SerializeToOstream(&out) || !out.flush()) {
            out.close();
            remove_file(partial);
            fail(partial, ": write failed (disk full?)");
        }
    }
    rename_file(partial, path);
}

void set_attr_ints(onnx::NodeProto* n, const char* name, const std::vector<std::int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v)
        a->add_ints(x);
}

void set_attr_float(onnx::NodeProto* n, const char* name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
}

void set_attr_int(onnx::NodeProto* n, const char* name, std::int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
}

void add_initializer(onnx::GraphProto& g, const std::string& name, const std::vector<std::int64_t>& dims,
                     const float* data) {
    auto* t = g.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims)
        t->add_dims(d);
    t->mutable_float_data()->Add(data, data + dims_product(dims));
}

const std::string& add_int64_initializer(onnx::GraphProto& g, const std::string& name,
                                         const std::vector<std::int64_t>& values) {
    auto* t = g.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(std::int64_t(values.size()));
    for (auto v : values)
        t->add_int64_data(v);
    return t->name();
}

} // namespace mimic::io::impl
