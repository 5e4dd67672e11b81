// ONNX interop: teachers from ONNX graphs (PyTorch's torch.onnx.export and others) into Mimic models,
// and any Mimic model out to a standard ONNX graph; parsed and written with Debian's libonnx protobufs.
#pragma once

#include "mimic/io/model_file.hpp"
#include "mimic/nn/model.hpp"

#include <string>
#include <vector>

namespace mimic::io {

/// Opset written by export_onnx (and the lowest opset import_onnx accepts is 11).
inline constexpr int kOnnxExportOpset = 13;
inline constexpr int kOnnxMinImportOpset = 11;

/// Reads an ONNX model (opset >= 11) made of the layers Mimic supports and converts it (docs/formats.md):
/// parse -> a graph of nodes over tensors -> simplification passes (constants out; shape computations out:
/// Shape of a data tensor and Gather, Unsqueeze, Squeeze, Concat, Slice, Cast, Add, Sub, Mul, Div,
/// ConstantOfShape over such values and constants, evaluated when a Reshape or Expand reads them, with the
/// batch as one symbol N and every other dimension known; Identity, Dropout and one-input Concat/Sum
/// bypassed; a Softmax/LogSoftmax at the output dropped with a notice on stderr; DenseNet's Concat(x0, n1,
/// .., nk) read as Concat(Concat(x0, .., nk-1), nk); nodes no output needs dropped) -> series-parallel
/// decomposition (a fork to the node where its paths meet again is one block: Add/Sum -> res, Concat over
/// channels -> cat, Mul of the fork tensor by a path -> gate, gate(sigmoid) -> silu, gate(hardsigmoid) ->
/// hardswish; a path that is the fork tensor is the identity) -> layers:
///   Gemm (transA = 0; alpha, beta, transB folded) and MatMul [+ Add]  -> dense:N (MatMul alone:
///   bottleneck:K) Conv (square kernel, equal strides, symmetric pads, dilation 1; group G)  -> conv:FxKsSpP
///   (conv:FxKsSpPgG when G > 1)
///   MaxPool / AveragePool (square, equal strides, symmetric pads)      -> pool:K[sS][pP][c] / avgpool:...
///   (c: ceil_mode where it changes the size); Pad folded into the next Conv or AveragePool
///   GlobalAveragePool, ReduceMean over [2, 3] (or over W then H)       -> gap
///   Relu, Sigmoid, Tanh, Clip(0, 6), HardSigmoid, HardSwish            -> relu, sigmoid, tanh, relu6, ...
///   LeakyRelu, Elu (alpha); exact GELU (Div by √2, Erf, Add 1, Mul by x and 0.5) -> leakyrelu:A, elu:A, gelu
///   Slice x[:, :, ::2, ::2] then Pad of zero channels (option-A shortcut) -> conv:Fx1s2p0, fixed weights
///   Flatten (axis 1), Reshape (constant or computed target, the batch first), Squeeze, Unsqueeze: views;
///   [N, D] from [N, C, H, W] -> flatten, [N, D, 1, 1] of a flat [N, D] stays flat (a gate broadcasts it)
///   Expand read only by Mul (expand_as of a gate)                      -> nothing (the gate broadcasts)
///   LayerNormalization, or ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div over the channels -> ln:E;
///   Transpose [0, 2, 3, 1] ... [0, 3, 1, 2] (channels last, ConvNeXt): nothing, MatMul there -> conv:Fx1p0
///   BatchNormalization (inference)        folded into the preceding Conv / Gemm / MatMul that no other
///                                         node reads, else bn with its running statistics
/// One input ([N, D] or [N, C, H, W]) and one output; several are refused naming them. Throws mimic::Error
/// with one line naming the file and, for unsupported operators, listing all of them ("model.onnx:
/// unsupported operators: InstanceNormalization"), or the node that cannot be represented (a graph that is
/// not series-parallel names the join). `meta` receives spec, input shape, classes and loss "onnx-import";
/// the model's weights and bn statistics are set. Nothing is written: the caller writes the model file.
/// The normalisation a dataset file applied to its raw rows (docs/formats.md): stored = (raw · scale −
/// mean) / std per feature, in float. export_onnx puts it in front of the network for raw-row input.
struct RawInput {
    std::string source; ///< the dataset file the statistics come from (for the graph's doc string)
    float scale = 1.0f; ///< @norm_scale (1/255 for 8-bit pixels)
    std::vector<float> mean, std;
};

/// The inputs an ONNX model was trained on, for import_onnx: the model expects (raw · data.scale − mean[c])
/// / std[c] per channel c (torchvision's ToTensor then Normalize(mean, std) for 8-bit pixels; one value
/// for every channel, or one per channel) and will be given rows stored with `data`'s normalisation.
struct InputNorm {
    RawInput data;
    std::vector<double> mean{0.0}, std{1.0};
};

/// With `input`, the model gets a first layer, bn, that maps rows stored with input->data's normalisation to
/// what the model expects: x · a[c] + b[c] with a = data std / std, b = (data mean − mean) / std. The
/// data's mean and std must be one value per channel (`--norm global` or `none`; a per-feature
/// normalisation is refused naming input->data.source).
nn::Model import_onnx(const std::string& path, ModelMeta* meta = nullptr, const InputNorm* input = nullptr);

/// Writes `model` as an ONNX graph (opset 13): input "input" [N, D] (flat models, shape 1x1xD) or
/// [N, C, H, W], output "logits" [N, classes], batch dimension symbolic ("N"). dense -> Gemm, bottleneck ->
/// MatMul, conv and dwconv -> Conv (with group), pool -> MaxPool, activations as themselves, flatten
/// (explicit or implicit before a dense after conv/pool) -> Flatten, bn -> BatchNormalization (`mimic export
/// onnx` passes the model through nn::fold_for_inference first); dropout is left out (inference graph). The
/// graph is checked with onnx::checker before it is written atomically (path.partial, then rename). With
/// `raw`, the input is instead "input" [N, D] of raw feature rows (e.g. 0-255 pixels as stored in the IDX
/// source): Mul by scale, Sub mean, Div std, and for image models Reshape to [N, C, H, W] come first.
void export_onnx(const nn::Model& model, const std::string& path, const RawInput* raw = nullptr,
                 const std::string& graph_name = "mimic");

} // namespace mimic::io
