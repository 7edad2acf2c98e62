"""Pixel-, boundary- and grain-level scores of a restored boundary image (numpy and OpenCV only).

Every image is a 2-D gray image, boundary dark and background light. Any image, prediction,
ground truth (`label`) or fragmented input (`micro`), is read through one threshold: a pixel
`>= 128` is background (class 1), a pixel `< 128` is boundary (class 0). A network's sigmoid
output scaled to 0..255 is therefore cut at 0.5.

Two layers, as in segmentation_models and MONAI: `image_statistics` turns one
(prediction, ground truth, input) triple into the counts every metric is made of, and
`MetricAccumulator` sums those counts over a split, one image at a time, in constant memory.
The per-metric functions (`miou`, `gap_recall`, ...) take one image or a sequence of images and
return the same numbers as the accumulator does over the same images. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence, Union

import cv2
import numpy as np

# Pixels at or above this gray value are background.
THRESHOLD = 128
BOUNDARY, BACKGROUND = 0, 1
# Default pixel tolerance of the boundary F1 (Euclidean, pixel centres).
TOLERANCE = 2.0
# Background components smaller than this (pixels) are specks, not grains: the 4-neighbour
# Laplacian leaves single enclosed pixels at triple junctions (about 7 per 512 px label).
MIN_GRAIN_AREA = 10
# Pixel size assumed for the ASTM E112 grain-size number: 1 pixel = 1 micrometre.
PIXEL_SIZE_UM = 1.0
# ASTM E112 planimetric relation: G = 3.321928 log10(N_A) - 2.954, N_A in grains per mm^2.
ASTM_SLOPE, ASTM_OFFSET = 3.321928, 2.954

Images = Union[np.ndarray, Sequence[np.ndarray]]


def boundary_mask(image: np.ndarray) -> np.ndarray:
    """Boolean mask of the boundary pixels (gray value < 128) of one 2-D image."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    return image < THRESHOLD


# --- grains --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grains:
    """The grains of one image: 4-connected background components of at least `min_area` pixels."""

    labels: np.ndarray  # (H, W) int32 component ids from cv2 (0 = boundary; specks keep their id)
    kept: np.ndarray  # (n_components + 1,) bool: which ids are grains (id 0 never)
    count: int  # grains
    cut: int  # grains touching the image border
    areas: np.ndarray  # (n_components + 1,) int: pixels per component id (model.measure uses these)
    centroids: np.ndarray  # (n_components + 1, 2) float64: (x, y) pixel centroid per component id
    touches: np.ndarray  # (n_components + 1,) bool: grains touching the image border

    @property
    def inside(self) -> int:
        """Grains that do not touch the image border."""
        return self.count - self.cut


def find_grains(boundary: np.ndarray, min_area: int = MIN_GRAIN_AREA) -> Grains:
    """Grains of a boundary mask: 4-connected components of its background with >= min_area pixels."""
    background = np.logical_not(boundary).view(np.uint8)
    _, labels, stats, centroids = cv2.connectedComponentsWithStats(background, connectivity=4, ltype=cv2.CV_32S)
    height, width = boundary.shape
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right, bottom = left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]
    kept = stats[:, cv2.CC_STAT_AREA] >= min_area
    kept[0] = False  # cv2's label 0 is the boundary
    cut = kept & ((left == 0) | (top == 0) | (right == width) | (bottom == height))
    return Grains(labels, kept, int(kept.sum()), int(cut.sum()), stats[:, cv2.CC_STAT_AREA], centroids, cut)


def adjusted_rand_index(first: np.ndarray, second: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) of two labelings of the same items.

    From the contingency table n_ij, row sums a_i, column sums b_j and n items:
    ARI = (sum C(n_ij,2) - E) / (M - E), E = sum C(a_i,2) sum C(b_j,2) / C(n,2),
    M = (sum C(a_i,2) + sum C(b_j,2)) / 2. When M == E the two labelings are identical (all in
    one cluster, or all singletons) and the index is 1. NaN for zero items.
    """
    first = np.asarray(first, dtype=np.int64).ravel()
    second = np.asarray(second, dtype=np.int64).ravel()
    if first.size != second.size:
        raise ValueError("both labelings must label the same items")
    if first.size == 0:
        return math.nan
    _, first = np.unique(first, return_inverse=True)
    _, second = np.unique(second, return_inverse=True)
    return _ari_from_codes(first, second, int(second.max()) + 1)


def _ari_from_codes(first: np.ndarray, second: np.ndarray, second_range: int) -> float:
    """ARI of two non-negative integer labelings (ids need not be consecutive)."""
    n = first.size
    if n == 0:
        return math.nan
    table = np.bincount(first * second_range + second)
    pairs = _pairs(table[table > 0]).sum()
    rows = _pairs(np.bincount(first)).sum()
    cols = _pairs(np.bincount(second)).sum()
    expected = float(rows) * float(cols) / (n * (n - 1) / 2) if n > 1 else 0.0
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return float((pairs - expected) / (maximum - expected))


def _pairs(counts: np.ndarray) -> np.ndarray:
    counts = counts.astype(np.int64)
    return counts * (counts - 1) // 2


def grain_partition_ari(pred: Grains, gt: Grains) -> float:
    """ARI of two grain maps over the pixels that lie in a grain of both (NaN if there are none)."""
    both = pred.kept[pred.labels] & gt.kept[gt.labels]
    return _ari_from_codes(pred.labels[both].astype(np.int64), gt.labels[both].astype(np.int64), gt.kept.size)


def matched_grains(pred: Grains, gt: Grains) -> int:
    """True grains matched one-to-one: a found grain holds >= 50 % of the true grain and the
    overlap is more than half of the found grain (strictly: a found grain made of two equal true
    grains matches neither, so no found grain matches two).

    Counts hide errors that cancel (a merge here, a split there); this does not.
    """
    both = pred.kept[pred.labels] & gt.kept[gt.labels]
    if not both.any():
        return 0
    codes = gt.labels[both].astype(np.int64) * pred.kept.size + pred.labels[both]
    pairs, overlap = np.unique(codes, return_counts=True)
    true_id, found_id = np.divmod(pairs, pred.kept.size)
    match = (2 * overlap >= gt.areas[true_id]) & (2 * overlap > pred.areas[found_id])
    return int(np.unique(true_id[match]).size)


def astm_grain_size(grains: Grains, shape: tuple[int, int], pixel_size_um: float = PIXEL_SIZE_UM) -> float:
    """ASTM E112 planimetric (Jeffries) grain-size number G of one image.

    N_A = (grains inside + grains cut by the border / 2) / image area in mm^2, with the image
    area = H * W * (pixel_size_um / 1000)^2; G = 3.321928 log10(N_A) - 2.954. NaN without grains.
    """
    area_mm2 = shape[0] * shape[1] * (pixel_size_um * 1e-3) ** 2
    weighted = grains.inside + 0.5 * grains.cut
    if weighted <= 0:
        return math.nan
    return ASTM_SLOPE * math.log10(weighted / area_mm2) - ASTM_OFFSET


# --- one image -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageStatistics:
    """Everything the metrics need from one (prediction, ground truth, input) triple."""

    confusion: np.ndarray  # (2, 2) int64, [gt class, predicted class], 0 = boundary, 1 = background
    erased: int  # gt boundary pixels that are background in the input
    recovered: int  # ... of those, predicted boundary
    pred_boundary: int  # predicted boundary pixels
    pred_matched: int  # ... within the tolerance of a gt boundary pixel
    gt_boundary: int  # gt boundary pixels
    gt_matched: int  # ... within the tolerance of a predicted boundary pixel
    grains_pred: int
    grains_gt: int
    grains_matched: int  # true grains matched one-to-one (`matched_grains`)
    ari: float  # grain-partition ARI (NaN: no pixel in a grain of both)
    astm_g_pred: float  # NaN: no grain
    astm_g_gt: float


def confusion_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """2x2 pixel counts [gt class, predicted class] of one image (class 0 boundary, 1 background)."""
    return _confusion(boundary_mask(pred), boundary_mask(gt))


def _confusion(pred_b: np.ndarray, gt_b: np.ndarray) -> np.ndarray:
    if pred_b.shape != gt_b.shape:
        raise ValueError(f"prediction {pred_b.shape} and ground truth {gt_b.shape} differ in shape")
    both = np.count_nonzero(pred_b & gt_b)
    gt_only = np.count_nonzero(gt_b) - both
    pred_only = np.count_nonzero(pred_b) - both
    return np.array([[both, gt_only], [pred_only, gt_b.size - both - gt_only - pred_only]], dtype=np.int64)


@lru_cache(maxsize=8)
def _disk(tol: float) -> np.ndarray:
    """Structuring element of the offsets (dy, dx) with dy^2 + dx^2 <= tol^2."""
    r = int(math.floor(tol))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (y * y + x * x <= tol * tol).astype(np.uint8)


def _within(mask: np.ndarray, tol: float) -> np.ndarray:
    """Pixels within Euclidean distance `tol` of a pixel of `mask`."""
    return cv2.dilate(mask.view(np.uint8), _disk(tol)).view(bool)


def _matched(pred_b: np.ndarray, gt_b: np.ndarray, tol: float) -> tuple[int, int]:
    near_gt, near_pred = _within(gt_b, tol), _within(pred_b, tol)
    return np.count_nonzero(pred_b & near_gt), np.count_nonzero(gt_b & near_pred)


def image_statistics(
    pred: np.ndarray,
    gt: np.ndarray,
    micro: np.ndarray | None,
    tol: float = TOLERANCE,
    min_grain_area: int = MIN_GRAIN_AREA,
    pixel_size_um: float = PIXEL_SIZE_UM,
) -> ImageStatistics:
    """The sufficient statistics of every metric for one (prediction, ground truth, input) triple.

    `micro` None: the input is no boundary map (a gray micrograph), so no pixel counts as erased
    and gap recall is undefined.
    """
    pred_b, gt_b = boundary_mask(pred), boundary_mask(gt)
    micro_b = gt_b if micro is None else boundary_mask(micro)
    if micro_b.shape != gt_b.shape:
        raise ValueError(f"input {micro_b.shape} and ground truth {gt_b.shape} differ in shape")
    confusion = _confusion(pred_b, gt_b)
    erased = gt_b & ~micro_b
    pred_matched, gt_matched = _matched(pred_b, gt_b, tol)
    grains_p, grains_g = find_grains(pred_b, min_grain_area), find_grains(gt_b, min_grain_area)
    return ImageStatistics(
        confusion=confusion,
        erased=int(np.count_nonzero(erased)),
        recovered=int(np.count_nonzero(erased & pred_b)),
        pred_boundary=int(confusion[:, BOUNDARY].sum()),
        pred_matched=int(pred_matched),
        gt_boundary=int(confusion[BOUNDARY].sum()),
        gt_matched=int(gt_matched),
        grains_pred=grains_p.count,
        grains_gt=grains_g.count,
        grains_matched=matched_grains(grains_p, grains_g),
        ari=grain_partition_ari(grains_p, grains_g),
        astm_g_pred=astm_grain_size(grains_p, pred_b.shape, pixel_size_um),
        astm_g_gt=astm_grain_size(grains_g, gt_b.shape, pixel_size_um),
    )


# --- pooling ---------------------------------------------------------------------------------
def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def miou_from_confusion(confusion: np.ndarray) -> float:
    """Mean over classes of TP / (TP + FP + FN), over the classes whose denominator is > 0 (as Keras)."""
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(0) + confusion.sum(1) - tp
    valid = denominator > 0
    return float((tp[valid] / denominator[valid]).mean()) if valid.any() else math.nan


def f1_from_counts(pred_boundary: int, pred_matched: int, gt_boundary: int, gt_matched: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of the boundary match; see `boundary_f1` for the empty cases."""
    precision, recall = _ratio(pred_matched, pred_boundary), _ratio(gt_matched, gt_boundary)
    if not pred_boundary and not gt_boundary:
        return precision, recall, math.nan
    if not pred_boundary or not gt_boundary or precision + recall == 0:
        return precision, recall, 0.0
    return precision, recall, 2 * precision * recall / (precision + recall)


class MetricAccumulator:
    """Scores a split streaming: `update` one triple at a time, `result` the pooled metrics.

    Pixel metrics pool their counts over all images (one confusion matrix, as Keras MeanIoU);
    grain metrics are means over images of per-image values, leaving out the images where the
    value is undefined (NaN). Memory does not grow with the number of images.
    """

    def __init__(self, tol: float = TOLERANCE, min_grain_area: int = MIN_GRAIN_AREA,
                 pixel_size_um: float = PIXEL_SIZE_UM):
        self.tol, self.min_grain_area, self.pixel_size_um = tol, min_grain_area, pixel_size_um
        self.images = 0
        self.confusion = np.zeros((2, 2), dtype=np.int64)
        self._counts = dict.fromkeys(("erased", "recovered", "pred_boundary", "pred_matched",
                                      "gt_boundary", "gt_matched", "grains_pred", "grains_gt", "grains_matched"), 0)
        # name -> [sum, number of images where defined]
        self._means = {name: [0.0, 0] for name in ("grain_count_error", "grain_ari", "astm_g_error")}

    def update(self, pred: np.ndarray, gt: np.ndarray, micro: np.ndarray) -> ImageStatistics:
        """Score one triple; returns its statistics."""
        stats = image_statistics(pred, gt, micro, self.tol, self.min_grain_area, self.pixel_size_um)
        self.add(stats)
        return stats

    def add(self, stats: ImageStatistics) -> None:
        """Add the statistics of one image (computed with this accumulator's settings)."""
        self.images += 1
        self.confusion += stats.confusion
        for name in self._counts:
            self._counts[name] += getattr(stats, name)
        self._mean("grain_count_error", _ratio(abs(stats.grains_pred - stats.grains_gt), stats.grains_gt))
        self._mean("grain_ari", stats.ari)
        self._mean("astm_g_error", abs(stats.astm_g_pred - stats.astm_g_gt))

    def _mean(self, name: str, value: float) -> None:
        if not math.isnan(value):
            self._means[name][0] += value
            self._means[name][1] += 1

    def result(self) -> dict[str, float]:
        """Every metric over the images added so far (NaN where undefined)."""
        c, cm = self._counts, self.confusion
        precision, recall, f1 = f1_from_counts(c["pred_boundary"], c["pred_matched"], c["gt_boundary"], c["gt_matched"])
        boundary_iou = _ratio(cm[0, 0], cm[0, 0] + cm[0, 1] + cm[1, 0])
        return {
            "images": float(self.images),
            "miou": miou_from_confusion(cm),
            "boundary_iou": float(boundary_iou),
            "gap_recall": _ratio(c["recovered"], c["erased"]),
            "spurious_rate": _ratio(float(cm[1, 0]), float(cm[1].sum())),
            "boundary_precision": precision,
            "boundary_recall": recall,
            "boundary_f1": f1,
            "grain_count_error": _ratio(*self._means["grain_count_error"]),
            "grain_ari": _ratio(*self._means["grain_ari"]),
            "grain_match": _ratio(c["grains_matched"], c["grains_gt"]),
            "astm_g_error": _ratio(*self._means["astm_g_error"]),
            "grains_pred": _ratio(c["grains_pred"], self.images),
            "grains_gt": _ratio(c["grains_gt"], self.images),
        }


# --- one metric at a time --------------------------------------------------------------------
def _pairs_of(*groups: Images) -> list[tuple[np.ndarray, ...]]:
    """Zip one image or sequences of images (a 3-D array is a sequence) into per-image tuples."""
    lists = [[g] if isinstance(g, np.ndarray) and g.ndim == 2 else list(g) for g in groups]
    if len({len(x) for x in lists}) != 1:
        raise ValueError("every argument must hold the same number of images")
    return list(zip(*lists))


def miou(pred: Images, gt: Images) -> float:
    """2-class mean IoU from one confusion matrix pooled over all pixels of all images.

    IoU_k = TP_k / (TP_k + FP_k + FN_k) for k in {boundary, background}; the mean is taken over
    the classes whose denominator is > 0, exactly as keras.metrics.MeanIoU(num_classes=2).
    """
    return miou_from_confusion(sum(confusion_matrix(p, g) for p, g in _pairs_of(pred, gt)))


def boundary_iou(pred: Images, gt: Images) -> float:
    """IoU of the boundary class alone, pooled over all pixels (NaN if neither has boundary)."""
    cm = sum(confusion_matrix(p, g) for p, g in _pairs_of(pred, gt))
    return _ratio(float(cm[0, 0]), float(cm[0, 0] + cm[0, 1] + cm[1, 0]))


def gap_recall(pred: Images, gt: Images, micro: Images) -> float:
    """Share of erased pixels (gt boundary, background in the input) predicted as boundary.

    Pooled over all images; NaN when no pixel is erased.
    """
    erased = recovered = 0
    for p, g, m in _pairs_of(pred, gt, micro):
        gap = boundary_mask(g) & ~boundary_mask(m)
        erased += np.count_nonzero(gap)
        recovered += np.count_nonzero(gap & boundary_mask(p))
    return _ratio(recovered, erased)


def spurious_rate(pred: Images, gt: Images) -> float:
    """Share of gt background pixels predicted as boundary, pooled (NaN if gt has no background)."""
    cm = sum(confusion_matrix(p, g) for p, g in _pairs_of(pred, gt))
    return _ratio(float(cm[1, 0]), float(cm[1].sum()))


def boundary_f1(pred: Images, gt: Images, tol: float = TOLERANCE) -> float:
    """Boundary F1 at a Euclidean pixel tolerance, counts pooled over all images.

    Precision: share of predicted boundary pixels with a gt boundary pixel at distance <= tol
    (pixel centres); recall: share of gt boundary pixels with a predicted one within tol;
    F1 = 2PR / (P + R). 0 when exactly one side has no boundary pixel, NaN when neither has.
    """
    counts = np.zeros(4, dtype=np.int64)
    for p, g in _pairs_of(pred, gt):
        pb, gb = boundary_mask(p), boundary_mask(g)
        pm, gm = _matched(pb, gb, tol)
        counts += (np.count_nonzero(pb), pm, np.count_nonzero(gb), gm)
    return f1_from_counts(*(int(x) for x in counts))[2]


def _grain_pairs(pred: Images, gt: Images, min_area: int) -> list[tuple[Grains, Grains, tuple[int, int]]]:
    out = []
    for p, g in _pairs_of(pred, gt):
        pb, gb = boundary_mask(p), boundary_mask(g)
        if pb.shape != gb.shape:
            raise ValueError(f"prediction {pb.shape} and ground truth {gb.shape} differ in shape")
        out.append((find_grains(pb, min_area), find_grains(gb, min_area), gb.shape))
    return out


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def grain_count_error(pred: Images, gt: Images, min_grain_area: int = MIN_GRAIN_AREA) -> float:
    """Mean over images of |grains(pred) - grains(gt)| / grains(gt).

    Grains: 4-connected background components of >= min_grain_area pixels, those touching the
    image border included. Images whose gt has no grain are left out (NaN if all are).
    """
    return _nanmean([_ratio(abs(p.count - g.count), g.count) for p, g, _ in _grain_pairs(pred, gt, min_grain_area)])


def grain_ari(pred: Images, gt: Images, min_grain_area: int = MIN_GRAIN_AREA) -> float:
    """Mean over images of the adjusted Rand index between the grain maps of pred and gt.

    Items: the pixels that lie in a grain (see `grain_count_error`) in both images, each
    labelled by its grain in either map. Images without such a pixel are left out.
    """
    return _nanmean([grain_partition_ari(p, g) for p, g, _ in _grain_pairs(pred, gt, min_grain_area)])


def astm_g_error(pred: Images, gt: Images, min_grain_area: int = MIN_GRAIN_AREA,
                 pixel_size_um: float = PIXEL_SIZE_UM) -> float:
    """Mean over images of |G(pred) - G(gt)|, G the ASTM E112 planimetric grain-size number.

    See `astm_grain_size`; images where either G is undefined (no grain) are left out.
    """
    return _nanmean([abs(astm_grain_size(p, s, pixel_size_um) - astm_grain_size(g, s, pixel_size_um))
                     for p, g, s in _grain_pairs(pred, gt, min_grain_area)])
