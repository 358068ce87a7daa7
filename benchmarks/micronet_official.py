"""Counts the official PyTorch MicroNet M0-M3 and compares them with lwnas' counts and the published budgets.

Evidence for the MicroNet-M2 discrepancy in the README: it builds the networks from the authors' own code
(a checkout of liyunsheng13/micronet, with the settings of its scripts/eval_micronet_m*.sh), counts every
component with PyTorch forward hooks, and prints the totals under each counting convention one might use.
fvcore, thop and ptflops are run as well when they are installed. Last, it copies the official network's
weights (and random batch-norm statistics) into ours and compares the two forward passes.

Needs PyTorch next to lwnas (not a dependency of lwnas):
    pip install torch && python benchmarks/micronet_official.py /path/to/micronet
"""
import argparse
import contextlib
import io
import logging

from common import EVAL_SETTINGS, official_model, official_modules

import lwnas
from lwnas.model.published import PUBLISHED


def components(model, modules, torch):
    """conv / FC multiply-adds, Shift-Max MLP multiply-adds, Shift-Max output elements by J, BN elements."""
    nn = torch.nn
    shift_max_fc = {id(fc) for m in model.modules() if isinstance(m, modules.activation.DYShiftMax)
                    for fc in m.fc if isinstance(fc, nn.Linear)}
    found = dict(conv=0, fc=0, shift_max_fc=0, fusion=0, shift_max_j1=0, shift_max_j2=0, bn=0)

    def hook(m, inputs, out):
        if isinstance(m, nn.Conv2d):
            found["conv"] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            found["shift_max_fc" if id(m) in shift_max_fc else "fc"] += m.in_features * m.out_features
        elif isinstance(m, modules.activation.DYShiftMax):
            j = m.exp // 2  # exp = 2J coefficients per channel
            found[f"shift_max_j{j}"] += out.numel()
            found["fusion"] += 2 * j * out.numel()
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            found["bn"] += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in handles:
        h.remove()
    found["params"] = sum(p.numel() for p in model.parameters())
    return found


def forward_difference(name, official, torch):
    """Largest |ours - official| of the backbone features and of the logits, with the official weights copied
    into our network layer by layer (both create their layers in the same order) and random batch-norm and
    head weights, so that nothing is an identity."""
    import numpy as np
    import paddle

    nn = torch.nn
    torch.manual_seed(0)
    with torch.no_grad():
        for m in official.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.1)
    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
    theirs = [m for m in official.modules() if isinstance(m, kinds)]
    model = lwnas.build(name)
    ours = [layer for layer in model.sublayers()
            if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Linear, paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D))]
    assert len(theirs) == len(ours), f"{name}: {len(theirs)} official layers with weights, {len(ours)} ours"
    for t, o in zip(theirs, ours):
        weight = t.weight.detach().numpy()
        o.weight.set_value(weight.T if isinstance(t, nn.Linear) else weight)
        if t.bias is not None:
            o.bias.set_value(t.bias.detach().numpy())
        if isinstance(t, (nn.BatchNorm1d, nn.BatchNorm2d)):
            o._mean.set_value(t.running_mean.numpy())
            o._variance.set_value(t.running_var.numpy())
    official.eval(), model.eval()
    x = np.random.RandomState(0).randn(2, 3, 224, 224).astype("float32")
    with torch.no_grad():
        features, logits = official.features(torch.from_numpy(x)).numpy(), official(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        ours_features = paddle.nn.Sequential(*model.layers[:-1])(paddle.to_tensor(x)).numpy()
        ours_logits = model(paddle.to_tensor(x)).numpy()
    return float(np.abs(ours_features - features).max()), float(np.abs(ours_logits - logits).max()), \
        float(np.abs(logits).max())


def third_party_counts(build, torch):
    """Totals reported by common counting tools, where installed (each has its own convention)."""
    x = torch.zeros(1, 3, 224, 224)
    counts = {}
    logging.disable(logging.WARNING)  # fvcore logs every module the forward pass skips
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with contextlib.suppress(ImportError):
            from fvcore.nn import FlopCountAnalysis
            counts["fvcore"] = FlopCountAnalysis(build(), x).total()
        with contextlib.suppress(ImportError):
            import thop
            counts["thop"] = thop.profile(build(), inputs=(x,), verbose=False)[0]
        with contextlib.suppress(ImportError):
            import ptflops
            counts["ptflops"] = ptflops.get_model_complexity_info(
                build(), (3, 224, 224), as_strings=False, print_per_layer_stat=False, backend="pytorch")[0]
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", help="a checkout of github.com/liyunsheng13/micronet")
    args = parser.parse_args()
    import torch

    modules = official_modules(args.checkout)
    m = 1e6
    print("official network, counted with PyTorch hooks (M):")
    print(f"{'config':12s} {'conv+FC':>8s} {'SM-MLP':>7s} {'fusions':>7s} {'BN el.':>7s} {'params':>7s}"
          f" | {'lwnas':>6s} {'same?':>5s} | {'published':>9s}")
    rows = {}
    for name, settings in EVAL_SETTINGS.items():
        c = components(official_model(modules, settings), modules, torch)
        ours = lwnas.count(name)
        official_total = c["conv"] + c["fc"] + c["shift_max_fc"] + c["fusion"]
        same = official_total == ours.macs and c["params"] == ours.params
        rows[name] = c
        print(f"{name:12s} {(c['conv'] + c['fc']) / m:8.3f} {c['shift_max_fc'] / m:7.3f} {c['fusion'] / m:7.3f}"
              f" {c['bn'] / m:7.3f} {c['params'] / m:7.3f} | {ours.macs / m:6.2f} {'yes' if same else 'NO':>5s}"
              f" | {PUBLISHED[name].madds / m:9.0f}")

    conventions = {
        "conv+FC+MLP (no fusions)": lambda c: c["conv"] + c["fc"] + c["shift_max_fc"],
        "+ fusions, 2J per element (lwnas)": lambda c: c["conv"] + c["fc"] + c["shift_max_fc"] + c["fusion"],
        "+ BN, 1 per element, no fusions": lambda c: c["conv"] + c["fc"] + c["shift_max_fc"] + c["bn"],
    }
    print("\nMAdds under each convention, and the deviation from the published budget:")
    for label, total in conventions.items():
        cells = [f"{total(c) / m:6.2f} ({total(c) / PUBLISHED[n].madds - 1:+6.1%})" for n, c in rows.items()]
        print(f"{label:34s} " + "  ".join(cells))
    for name, settings in EVAL_SETTINGS.items():
        tools = third_party_counts(lambda: official_model(modules, settings), torch)
        if tools:
            print(f"{name}: " + ", ".join(f"{tool} {v / m:.2f}M" for tool, v in tools.items()))

    print("\nsame weights, same input (2 images at 224px): largest |ours - official|")
    for name, settings in EVAL_SETTINGS.items():
        features, logits, scale = forward_difference(name, official_model(modules, settings), torch)
        print(f"{name}: backbone features {features:.1e}, logits {logits:.1e} (logits up to {scale:.2f})")


if __name__ == "__main__":
    main()
