"""A trained checkpoint on its own: load it, evaluate it on a split of a data set, predict images."""
from __future__ import annotations

from pathlib import Path

from ..errors import LwnasError
from ..train.checkpoint import load_trained
from ..train.settings import TrainConfig


def evaluate_run(path: Path, data: str | None, skip_bad: bool = False, split: str = "val") -> dict:
    """Top-1/top-5 of a trained run on `split` of `data` (default: the data set it was trained on): 'val', the
    split it was selected on (held out from the training images as its training held it out), or 'test',
    reported only, never selected on."""
    from ..train.loop import evaluate, loaders
    from ..train.splits import load_data, on_classes, test_set

    model, state, spec = load_trained(path)
    data = data or trained_on(state, path)
    config = TrainConfig.from_dict(state["config"])
    if split == "test":
        images = test_set(data, config, skip_bad, classes=state["classes"])
    else:
        whole = TrainConfig.from_dict({**config.to_dict(), "val_subset": None})  # all of it, not the subset
        images = on_classes(load_data(data, whole, skip_bad)[1], state["classes"], data, split)
    _, _, _, loader = loaders(images, images, config)
    loss, top1, top5 = evaluate(model, loader)
    return {"arch_hash": spec.arch_hash, "data": data, "split": split, "images": len(images), "loss": loss,
            "top1": top1, "top5": top5}


def trained_on(state: dict, path: Path) -> str:
    """The data set a checkpoint was trained on, as recorded in it."""
    if "data" not in state:
        raise LwnasError(f"{path} does not record its data set (written by an older lwnas); pass --data")
    return state["data"]


def predict(path: Path, images: list[str], top_k: int = 5) -> list[dict]:
    import numpy as np
    import paddle
    from PIL import Image

    from ..train.data import Augmented, ImageSet, _square, stored_side

    model, state, _ = load_trained(path)
    resolution = state["config"]["resolution"]
    results = []
    for image in images:
        try:
            with Image.open(image) as img:
                array = _square(img.convert("RGB"), stored_side(resolution))
        except FileNotFoundError:
            raise LwnasError(f"{image}: image file not found") from None
        except (OSError, ValueError) as err:
            raise LwnasError(f"{image}: unreadable image ({type(err).__name__})") from None
        x, _ = Augmented(ImageSet(array[None], np.zeros(1, np.int64), state["classes"]), resolution, False)[0]
        with paddle.no_grad():
            probs = paddle.nn.functional.softmax(model(paddle.to_tensor(x[None])), axis=1).numpy()[0]
        best = np.argsort(-probs)[:top_k]
        results.append({"image": image, "top": [{"class": state["classes"][i], "index": int(i),
                                                 "probability": float(probs[i])} for i in best]})
    return results
