"""Builds the authors' PyTorch networks and checks that lwnas counts the same parameters and MAdds, exactly.

Evidence that the named configs are the official networks, layer for layer: each official model is built from
a checkout of its repository, counted with PyTorch hooks (conv and linear multiply-adds, `sum(p.numel())`),
and compared with `lwnas.count`. MobileOne is compared both as trained and after the official
re-parameterization. MobileNetV3 is compared with timm's reference implementation. MicroNet has its own script,
micronet_official.py, which also compares counting conventions.

With --forward, FasterNet, MobileOne, AsymmNet and MobileNetV3 are also checked as functions: the official weights
(with random batch-norm statistics) are copied into our network and both forward passes are compared, MobileOne
in its trained form and after both sides re-parameterize. (MicroNet's forward check is in micronet_official.py;
ShuffleNet places its shuffles as the papers draw them, equal to the official code only up to a channel
permutation, so copied weights do not line up.)

Needs PyTorch (and timm, which FasterNet's code imports) next to lwnas; neither is a dependency of lwnas:
    pip install torch timm
    python benchmarks/official_counts.py --fasternet PATH --mobileone PATH --shufflenet PATH --asymmnet PATH --timm
Exit status 1 if any count differs.
"""
import argparse
import contextlib
import importlib
import importlib.util
import io
import sys
from pathlib import Path

import lwnas

FASTERNET_KEYS = ("mlp_ratio", "embed_dim", "depths", "feature_dim", "patch_size", "patch_stride", "patch_size2",
                  "patch_stride2", "layer_scale_init_value", "drop_path_rate", "norm_layer", "act_layer", "n_div")


def torch_count(model):
    """(parameters, multiply-adds of Conv2d and Linear) of a PyTorch model on one 224x224 image."""
    import torch

    macs = 0

    def hook(module, inputs, out):
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs += out.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, torch.nn.Linear):
            macs += module.in_features * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        model.eval()(torch.zeros(1, 3, 224, 224))
    for h in handles:
        h.remove()
    return sum(p.numel() for p in model.parameters()), macs


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    return module


def fasternet_module(checkout: Path):
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a hint about mmdetection
        return importlib.import_module("models.fasternet")


def fasternet(checkout: Path):
    import yaml

    models = fasternet_module(checkout)
    for variant in ("t0", "t1", "t2", "s", "m", "l"):
        cfg = yaml.safe_load((checkout / "cfg" / f"fasternet_{variant}.yaml").read_text())
        yield f"fasternet_{variant}", "", models.FasterNet(**{k: cfg[k] for k in FASTERNET_KEYS})


def mobileone(checkout: Path):
    module = load_module(checkout / "mobileone.py", "official_mobileone")
    for variant in ("s0", "s1", "s2", "s3", "s4"):
        model = module.mobileone(variant=variant)
        yield f"mobileone_{variant}", "trained", model
        yield f"mobileone_{variant}", "deployed", module.reparameterize_model(model.eval())


def shufflenet(checkout: Path):
    for version, sizes in (("V2", [("0.5x", "x0_5"), ("1.0x", "x1_0"), ("1.5x", "x1_5"), ("2.0x", "x2_0")]),
                           ("V1", [(3, "0.5x", "g3_x0_5"), (3, "1.0x", "g3_x1_0"), (3, "1.5x", "g3_x1_5"),
                                   (3, "2.0x", "g3_x2_0"), (8, "1.0x", "g8_x1_0")])):
        folder = checkout / f"ShuffleNet{version}"
        sys.path.insert(0, str(folder))
        sys.modules.pop("blocks", None)  # both versions' network.py import their own `blocks`
        network = load_module(folder / "network.py", f"official_shufflenet_{version}")
        sys.path.remove(str(folder))
        for size in sizes:
            with contextlib.redirect_stdout(io.StringIO()):  # the constructors print their widths
                if version == "V2":
                    name, model = f"shufflenet_v2_{size[1]}", network.ShuffleNetV2(model_size=size[0])
                else:
                    name, model = f"shufflenet_v1_{size[2]}", network.ShuffleNetV1(group=size[0], model_size=size[1])
            yield name, "", model


def asymmnet(checkout: Path):
    module = load_module(checkout / "pytorch" / "asymmnet.py", "official_asymmnet")
    yield "asymmnet_large_x1_0", "", module.AsymmNet_Large(multiplier=1.0)
    yield "asymmnet_large_x0_5", "", module.AsymmNet_Large(multiplier=0.5)
    yield "asymmnet_small_x1_0", "", module.AsymmNet_Small(multiplier=1.0)


def mobilenetv3_timm():
    import timm

    yield "mobilenetv3_large_x1_0", "timm", timm.create_model("mobilenetv3_large_100")
    yield "mobilenetv3_small_x1_0", "timm", timm.create_model("mobilenetv3_small_100")


def randomize(model, torch):
    """Random batch-norm statistics and affine weights, and larger head weights, so that no layer is an identity."""
    nn = torch.nn
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.1)
    return model.eval()


def copy_weights(pairs, torch):
    """Official module -> our layer, for convs, linears (a 1x1 conv may be our Linear) and batch norms."""
    import paddle

    for theirs, ours in pairs:
        weight = theirs.weight.detach().numpy()
        if isinstance(ours, paddle.nn.Linear):
            weight = weight.reshape(weight.shape[0], -1).T
        if tuple(weight.shape) != tuple(ours.weight.shape):
            raise ValueError(f"cannot copy {theirs} into {ours}")
        ours.weight.set_value(weight)
        if theirs.bias is not None:
            ours.bias.set_value(theirs.bias.detach().numpy())
        if isinstance(theirs, torch.nn.BatchNorm2d):
            ours._mean.set_value(theirs.running_mean.numpy())
            ours._variance.set_value(theirs.running_var.numpy())


def largest_difference(official, ours, torch) -> float:
    """max |ours - official| over the logits, relative to max |official| (random batch norms make some huge)."""
    import numpy as np
    import paddle

    x = np.random.RandomState(0).randn(2, 3, 224, 224).astype("float32")
    with torch.no_grad():
        expected = official(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        difference = np.abs(ours.eval()(paddle.to_tensor(x)).numpy() - expected).max()
    return float(difference / np.abs(expected).max())


def weighted_layers(model):
    import paddle

    return [layer for layer in model.sublayers()
            if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Linear, paddle.nn.BatchNorm2D))]


def fasternet_forward(checkout: Path, torch):
    """Official FasterNet creates each block's MLP before its partial conv; ours the other way round."""
    models = fasternet_module(checkout)
    nn = torch.nn

    def in_our_order(module):
        if isinstance(module, models.MLPBlock):
            yield from in_our_order(module.spatial_mixing)
            yield from in_our_order(module.mlp)
        elif isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            yield module
        else:
            for child in module.children():
                yield from in_our_order(child)

    for name, _, official in fasternet(checkout):
        randomize(official, torch)
        ours = lwnas.build(name)
        copy_weights(zip(list(in_our_order(official)), weighted_layers(ours), strict=True), torch)
        yield name, "", largest_difference(official, ours, torch)


def same_order_forward(source, torch):
    """Families whose official code creates its layers in our order (AsymmNet's port, timm's MobileNetV3)."""
    nn = torch.nn
    for name, form, official in source:
        randomize(official, torch)
        ours = lwnas.build(name)
        theirs = [m for m in official.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
        copy_weights(zip(theirs, weighted_layers(ours), strict=True), torch)
        yield name, form, largest_difference(official, ours, torch)


def mobileone_forward(checkout: Path, torch):
    """Block by block: conv branches, scale branch, skip batch norm, squeeze-excite; then the classifier."""
    from lwnas.model.blocks.mobileone import MobileOneConv

    module = load_module(checkout / "mobileone.py", "official_mobileone")
    for variant in ("s0", "s1", "s2", "s3", "s4"):
        official = randomize(module.mobileone(variant=variant), torch)
        ours = lwnas.build(f"mobileone_{variant}")
        pairs = []
        blocks = [m for m in official.modules() if isinstance(m, module.MobileOneBlock)]
        for theirs, mine in zip(blocks, [layer for layer in ours.sublayers() if isinstance(layer, MobileOneConv)],
                                strict=True):
            branches = list(zip(theirs.rbr_conv, mine.conv_branches, strict=True))
            if theirs.rbr_scale is not None:
                branches.append((theirs.rbr_scale, mine.scale_branch))
            for conv_bn, our_conv_bn in branches:
                pairs += zip((conv_bn.conv, conv_bn.bn), weighted_layers(our_conv_bn), strict=True)
            if theirs.rbr_skip is not None:
                pairs.append((theirs.rbr_skip, mine.skip_branch))
            if isinstance(theirs.se, module.SEBlock):
                pairs += [(theirs.se.reduce, mine.se.reduce), (theirs.se.expand, mine.se.expand)]
        pairs.append((official.linear, weighted_layers(ours)[-1]))
        if len(pairs) != len(weighted_layers(ours)):
            raise ValueError(f"mobileone_{variant}: {len(pairs)} layers mapped of {len(weighted_layers(ours))}")
        copy_weights(pairs, torch)
        yield f"mobileone_{variant}", "trained", largest_difference(official, ours, torch)
        yield f"mobileone_{variant}", "deployed", largest_difference(
            module.reparameterize_model(official), lwnas.reparameterize(ours), torch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fasternet", type=Path, help="checkout of JierunChen/FasterNet")
    parser.add_argument("--mobileone", type=Path, help="checkout of apple/ml-mobileone")
    parser.add_argument("--shufflenet", type=Path, help="checkout of megvii-model/ShuffleNet-Series")
    parser.add_argument("--asymmnet", type=Path, help="checkout of Spark001/AsymmNet")
    parser.add_argument("--timm", action="store_true", help="compare MobileNetV3 with timm's implementation")
    parser.add_argument("--forward", action="store_true",
                        help="also compare forward passes with the official weights copied into ours")
    args = parser.parse_args()
    sources = [fn(path) for fn, path in ((fasternet, args.fasternet), (mobileone, args.mobileone),
                                         (shufflenet, args.shufflenet), (asymmnet, args.asymmnet)) if path]
    if args.timm:
        sources.append(mobilenetv3_timm())
    if not sources:
        parser.error("name at least one official checkout (or --timm)")

    print(f"{'config':24s} {'':9s} {'official params':>16s} {'official MAdds':>15s} {'lwnas params':>13s}"
          f" {'lwnas MAdds':>15s}  same")
    differ = 0
    for source in sources:
        for name, form, model in source:
            params, macs = torch_count(model)
            cost = lwnas.count(name)
            ours = cost.train_params if form == "trained" else cost.params
            same = params == ours and (form == "trained" or macs == cost.macs)  # lwnas MAdds are the deployed
            differ += not same
            print(f"{name:24s} {form:9s} {params:16,} {macs:15,} {ours:13,} {cost.macs:15,}  {'yes' if same else 'NO'}",
                  flush=True)
    print("all counts equal" if not differ else f"{differ} counts differ")
    if args.forward:
        import torch

        print("\nsame weights, same input (2 images at 224px): max |ours - official| / max |official| of the logits")
        checks = [fn(path, torch) for fn, path in ((fasternet_forward, args.fasternet),
                                                   (mobileone_forward, args.mobileone)) if path]
        if args.asymmnet:
            checks.append(same_order_forward(asymmnet(args.asymmnet), torch))
        if args.timm:
            checks.append(same_order_forward(mobilenetv3_timm(), torch))
        for check in checks:
            for name, form, difference in check:
                print(f"{name:24s} {form:9s} {difference:.1e}", flush=True)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
