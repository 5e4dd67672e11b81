// The command registry: binds each stage's options struct to its describe() and run() functions.
// Adding a stage means one include and one line here.
#include "mimic/cli/app.hpp"
#include "mimic/stages/data_import.hpp"
#include "mimic/stages/distill.hpp"
#include "mimic/stages/ensemble.hpp"
#include "mimic/stages/eval.hpp"
#include "mimic/stages/info.hpp"
#include "mimic/stages/label.hpp"
#include "mimic/stages/onnx.hpp"
#include "mimic/stages/train.hpp"
#include "mimic/stages/transfer.hpp"

namespace mimic::cli {

namespace {
template <class Opts>
struct Stage : StageBase {
    Opts opts;
    std::vector<std::string> pos;
    explicit Stage(std::vector<std::string> p) : pos(std::move(p)) {}
    void describe(boost::program_options::options_description& d) override { stages::describe(d, opts); }
    void run(const par::Comm& comm) override { stages::run(opts, comm); }
    std::vector<std::string> positional() const override { return pos; }
};

template <class Opts>
Command command(std::string name, std::string summary, std::vector<std::string> positional = {}) {
    return Command{std::move(name), std::move(summary),
                   [positional] { return std::unique_ptr<StageBase>(new Stage<Opts>(positional)); }};
}
} // namespace

const std::vector<Command>& commands() {
    static const std::vector<Command> all = {
        command<stages::DataImportOptions>("data import",
                                           "IDX, NumPy, HDF5, CIFAR or image folders -> train/val/test dataset files"),
        command<stages::EnsembleTrainOptions>(
            "ensemble train", "train N teacher members across ranks and write their manifest"),
        command<stages::EnsembleAddOptions>(
            "ensemble add", "register trained model files as members of an ensemble manifest", {"model..."}),
        command<stages::EnsembleInfoOptions>("ensemble info",
                                             "print the members table of an ensemble manifest", {"manifest"}),
        command<stages::LabelOptions>(
            "label", "average the ensemble's logits over a transfer set into a parallel HDF5 file"),
        command<stages::TransferOptions>("transfer",
                                         "build a transfer set: source rows plus augmented and MUNGE rows"),
        command<stages::TrainOptions>(
            "train", "train a network on a labelled dataset file (data-parallel over ranks)"),
        command<stages::EvalOptions>(
            "eval", "accuracy, top-k accuracy and confusion matrix of a model on a dataset file"),
        command<stages::DistillOptions>(
            "distill", "train a student on the ensemble's logits (R data replicas x M model shards)"),
        command<stages::OnnxImportOptions>(
            "import onnx", "convert an ONNX teacher (opset >= 11) into a Mimic model file", {"model"}),
        command<stages::OnnxExportOptions>(
            "export onnx", "write a Mimic model file as a standard ONNX graph (opset 13)", {"model"}),
        command<stages::InfoOptions>("info", "describe a Mimic HDF5 file (dataset, model, manifest, logits)",
                                     {"file"}),
    };
    return all;
}

} // namespace mimic::cli
