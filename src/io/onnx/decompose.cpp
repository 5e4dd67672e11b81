// Series-parallel decomposition of the ONNX import: a chain of nodes, each fork to the node where its paths
// meet again one block (Add/Sum -> res, Concat over channels -> cat, Mul by a path -> gate, silu, hardswish).
#include "mimic/io/impl/onnx_import.hpp"

#include "mimic/core/error.hpp"

#include <algorithm>

namespace mimic::io::impl {

namespace {

/// "res(A)", "cat(|A)", "gate(A)": the token of a block from its branches' tokens (an empty branch is the
/// identity; res with one chain and the identity is written res(A)).
std::string block_token(const Pending& b) {
    const bool res1 = b.join == nn::Join::Add && b.branches.size() == 2 && b.branches[1].empty();
    std::string s = std::string(nn::join_name(b.join)) + "(";
    for (std::size_t j = 0; j < (res1 ? 1 : b.branches.size()); ++j) {
        if (j) s += "|";
        for (std::size_t k = 0; k < b.branches[j].size(); ++k)
            s += (k ? "," : "") + b.branches[j][k].token;
    }
    return s + ")";
}

} // namespace

/// The join of the paths that fork at tensor t (read by `cons`): the first node, in topological order,
/// that every path reaches (the immediate post-dominator of the fork in a series-parallel graph).
int Importer::join_of(const std::string& t, std::vector<int> cons) const {
    std::sort(cons.begin(), cons.end());
    cons.erase(std::unique(cons.begin(), cons.end()), cons.end());
    std::vector<int> hits(nodes_.size(), 0);
    for (int c : cons) {
        std::vector<char> seen(nodes_.size(), 0);
        std::vector<int> todo{c};
        while (!todo.empty()) {
            const int x = todo.back();
            todo.pop_back();
            if (seen[std::size_t(x)]) continue;
            seen[std::size_t(x)] = 1;
            ++hits[std::size_t(x)];
            for (const auto& o : nodes_[std::size_t(x)].out)
                for (int y : readers(o))
                    todo.push_back(y);
        }
    }
    for (std::size_t i = std::size_t(cons.front()); i < nodes_.size(); ++i)
        if (hits[i] == int(cons.size())) return int(i);
    fail(path_, ": the paths from tensor '", t, "' never join again (the graph is not series-parallel)");
}

/// The chain of nodes from tensor t (the graph's input, or a fork) into `out`: node `first` (a reader
/// of t; -1: t's only reader), then on, each fork becoming one block, until the tensor reached is read
/// by node `stop` alone (the join of the block this chain is a branch of; -1: the graph's output).
/// Returns that tensor.
std::string Importer::chain(const std::string& t, int first, int stop, std::vector<Pending>& out) {
    layers_ = &out, cur_ = t, fresh_param_ = false, fresh_affine_ = false, pad_ = -1, dims_.clear();
    channels_last_ = false, row_order_.clear();
    for (int next = first;; next = -1) {
        if (next < 0) {
            if (stop < 0 && cur_ == output_name_) break;
            const auto& cons = readers(cur_);
            if (cons.empty())
                fail(path_, ": tensor '", cur_, "' is read by no node and is not the graph's output");
            if (stop >= 0 && std::count(cons.begin(), cons.end(), stop) == long(cons.size())) break;
            if (cons.size() > 1) {
                fork(cons, stop);
                continue;
            }
            next = cons[0];
        }
        const GraphNode& n = nodes_[std::size_t(next)];
        if (data_inputs(n).size() > 1 || (stop >= 0 && next > stop))
            fail(n.where,
                 ": joins paths that do not fork from one tensor (the graph is not series-parallel)");
        visit(n);
    }
    if (pad_ >= 0) pad_not_folded();
    need_layer_shape(path_ + ": tensor '" + cur_ + "'");
    need_no_row_order(path_ + ": tensor '" + cur_ + "'");
    return cur_;
}

/// The paths that fork at cur_ (read by `cons`), up to their join, as one block; cur_ becomes the join's
/// output. A path that is the fork tensor itself is the identity (an empty branch).
void Importer::fork(const std::vector<int>& cons, int stop) {
    if (pad_ >= 0) pad_not_folded();
    need_layer_shape(path_ + ": tensor '" + cur_ + "', read by several nodes,");
    need_no_row_order(path_ + ": tensor '" + cur_ + "', read by several nodes,");
    const std::string t = cur_;
    const int J = join_of(t, cons);
    const GraphNode& j = nodes_[std::size_t(J)];
    if (stop >= 0 && J >= stop)
        fail(j.where, ": joins paths from tensor '", t, "' that fork inside the block joined at",
             nodes_[std::size_t(stop)].where.substr(path_.size() + 1), " (the graph is not series-parallel)");
    Pending b;
    b.kind = nn::LayerKind::Block;
    b.join = join_kind(j, t);
    const std::vector<std::string> ins = data_inputs(j);
    b.branches.resize(ins.size());
    std::vector<bool> done(ins.size(), false);
    const Walk saved = save();
    bool flat = false;
    for (const auto& unit : fork_units(cons, J)) {
        const int c = unit[0];
        std::vector<Pending> branch;
        restore(saved);
        std::string end;
        if (unit.size() == 1) {
            end = c == J ? t : chain(t, c, J, branch);
        } else { // paths that meet before J: their block first, then on to J
            layers_ = &branch, fresh_param_ = false, fresh_affine_ = false;
            fork(unit, J);
            const std::string met = cur_;
            end = chain(met, -1, J, branch);
        }
        flat = flat || !image_;
        std::size_t p = 0;
        while (p < ins.size() && (done[p] || ins[p] != end))
            ++p;
        if (p == ins.size()) fail(j.where, ": reads '", end, "' fewer times than paths reach it");
        b.branches[p] = std::move(branch);
        done[p] = true;
    }
    for (std::size_t p = 0; p < ins.size(); ++p)
        if (!done[p])
            fail(j.where, ": its input '", ins[p], "' does not come from tensor '", t,
                 "', where the other paths fork (the graph is not series-parallel)");
    restore(saved);
    image_ = saved.image && (b.join == nn::Join::Mul || !flat);
    push_block(std::move(b), j.where);
    reach(j.output(0));
}

/// The readers `cons` of a fork tensor in units: one reader, or the readers whose paths meet at a node
/// before the join J that no other reader's path reaches (CBAM's average- and max-pooled paths, added
/// before the gate that joins them with the tensor), which fork as a block of their own in one branch.
std::vector<std::vector<int>> Importer::fork_units(const std::vector<int>& cons, int J) const {
    const std::size_t k = cons.size();
    std::vector<std::vector<int>> units;
    for (int c : cons)
        units.push_back({c});
    std::set<int> distinct(cons.begin(), cons.end());
    if (k < 3 || distinct.size() != k) return units;
    std::vector<std::vector<char>> reach(k, std::vector<char>(std::size_t(J), 0)); // nodes before J
    for (std::size_t i = 0; i < k; ++i) {
        std::vector<int> todo{cons[i]};
        while (!todo.empty()) {
            const int x = todo.back();
            todo.pop_back();
            if (x >= J || reach[i][std::size_t(x)]) continue;
            reach[i][std::size_t(x)] = 1;
            for (const auto& o : nodes_[std::size_t(x)].out)
                for (int y : readers(o))
                    todo.push_back(y);
        }
    }
    std::vector<std::vector<char>>
        groups; // the readers reaching a node, 2 to k - 1 of them, the largest sets
    for (int x = 0; x < J; ++x) {
        std::vector<char> m(k, 0);
        std::size_t count = 0;
        for (std::size_t i = 0; i < k; ++i)
            count += std::size_t(m[i] = reach[i][std::size_t(x)]);
        if (count < 2 || count == k) continue;
        auto within = [](const std::vector<char>& a, const std::vector<char>& b) {
            for (std::size_t i = 0; i < a.size(); ++i)
                if (a[i] && !b[i]) return false;
            return true;
        };
        bool inside = false;
        for (auto& g : groups) {
            if (within(m, g))
                inside = true;
            else if (within(g, m))
                g = m, inside = true;
        }
        if (!inside) groups.push_back(m);
    }
    std::vector<std::vector<int>> out;
    std::vector<char> used(k, 0);
    for (std::size_t i = 0; i < k; ++i) {
        if (used[i]) continue;
        std::vector<int> unit{cons[i]};
        for (const auto& g : groups)
            if (g[i])
                for (std::size_t j = i + 1; j < k; ++j)
                    if (g[j] && !used[j]) unit.push_back(cons[j]), used[j] = 1;
        out.push_back(std::move(unit));
    }
    return out;
}

/// How node j joins the paths from tensor t: Add or Sum -> res, Concat over channels -> cat, Mul of t
/// by a path from it -> gate.
nn::Join Importer::join_kind(const GraphNode& j, const std::string& t) const {
    const std::string& op = j.op_type();
    if (op == "Add" || op == "Sum") return nn::Join::Add;
    if (op == "Concat") {
        const auto axis = attr_int(j, "axis", 0);
        if (axis == 1 || (image_ && axis == -3) || (!image_ && axis == -1)) return nn::Join::Concat;
        fail(j.where, ": concatenates over axis ", axis, "; only the channel axis 1 joins paths");
    }
    const auto d = data_inputs(j);
    if (op == "Mul" && d.size() == 2 && (d[0] == t) != (d[1] == t)) return nn::Join::Mul;
    fail(j.where, ": joins the paths from tensor '", t, "'; only Add, Sum, Concat over channels and Mul of ",
         "that tensor by one path from it (a gate) join paths");
}

/// A block as its token; gate(sigmoid) is silu and gate(hardsigmoid) hardswish (x * f(x)).
void Importer::push_block(Pending b, const std::string& where) {
    if (b.join == nn::Join::Mul) {
        std::vector<Pending> g = std::move(b.branches[b.branches[0].empty() ? 1 : 0]);
        const auto k = g.size() == 1 ? g[0].kind : nn::LayerKind::Block;
        if (k == nn::LayerKind::Sigmoid || k == nn::LayerKind::HardSigmoid) {
            Pending p;
            p.kind = k == nn::LayerKind::Sigmoid ? nn::LayerKind::SiLU : nn::LayerKind::HardSwish;
            p.token = nn::kind_name(p.kind);
            return push(std::move(p), where);
        }
        b.branches.assign(1, std::move(g));
    }
    if (b.join == nn::Join::Add && b.branches.size() == 2 && b.branches[0].empty())
        std::swap(b.branches[0], b.branches[1]); // res(A): A first, the identity second
    b.token = block_token(b);
    push(std::move(b), where);
}

} // namespace mimic::io::impl
