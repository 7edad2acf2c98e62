"""Restoration methods, one home for `evaluate`, `predict` and `measure --restore`.

A method turns a binary boundary image (0 boundary, 255 background) or a model's background
probability into a restored boundary image:

- `identity` (`--method none` in predict and measure): the input itself, as prepared;
- `bridge`: the classical direction-guided gap closer (model/methods/classical.py);
- `model`: the Attention U-Net's probability, thresholded (model/inference/postprocess.py turns
  probabilities into masks; running the network lives in model/inference, which imports this
  package, never the other way round);
- `model+bridge`: the model's mask without its specks, then the bridge (`bridged`);
- no method given (None): the model's own choice, `model+bridge` when its settings say `bridge`
  (chosen on the validation split, model.training.tune), else `model`.

numpy and OpenCV only: nothing here imports TensorFlow or model.inference / model.scoring.
"""

from __future__ import annotations

from .classical import BASELINES, bridge, bridged, identity, thin
from .masks import THRESHOLD, remove_specks, to_mask

# Names as the commands spell them: `evaluate --baseline` uses identity/bridge, `predict --method`
# and `measure --restore --method` use none (= identity)/bridge/model/model+bridge.
METHODS = ("identity", "bridge", "model", "model+bridge")
PREDICT_METHODS = ("model", "bridge", "model+bridge", "none")
MODEL_METHODS = ("model", "model+bridge")


def uses_model(method: str | None) -> bool:
    """Whether the method runs the network (and so needs a model, and TensorFlow); None is the
    model's own choice (`model` or `model+bridge`, from its settings), so it does."""
    return method is None or method in MODEL_METHODS


__all__ = ["BASELINES", "METHODS", "MODEL_METHODS", "PREDICT_METHODS", "THRESHOLD", "bridge", "bridged",
           "identity", "remove_specks", "thin", "to_mask", "uses_model"]
