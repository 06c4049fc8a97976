"""The pattern of every method's learning test: trained vs untrained vs not translating.

A learning test trains a few hundred steps on small real data, then scores three
translators with one scoring function on the same held-out set:

- the untrained model (where training started),
- a baseline that does not translate at all (paired data: the input itself as the
  output; unpaired data: the untranslated input images scored against the target
  domain),
- the trained model,

and asserts that the trained score beats both by stated margins. Beating the
untrained model alone shows little: its output is near 0 everywhere, and a net that
learnt only to copy its input beats it on most tasks (on the sample set, gray input
vs colour target scores L1 0.33 against 0.57 untrained).

    scores = {"untrained": heldout_l1(model.translate, val), "identity": heldout_l1(identity, val)}
    model.fit(...)
    scores["trained"] = heldout_l1(model.translate, val)
    assert_learned("held-out L1", scores, untrained=0.6, identity=0.8)
"""

import numpy as np


def identity(images):
    """The do-nothing translator: output = input."""
    return images


def heldout_l1(translate, dataset):
    """Mean |translate(x) - y| over every pixel of an (x, y) dataset, in [-1, 1] units.

    Args:
        translate: images [N, H, W, C] in [-1, 1] -> outputs of the same shape.
        dataset: batches (x, y) of held-out inputs and targets.
    """
    total, count = 0.0, 0
    for x, y in dataset:
        out = np.asarray(translate(x), np.float64)
        total += float(np.abs(out - np.asarray(y, np.float64)).sum())
        count += out.size
    return total / count


def assert_learned(metric, scores, higher_is_better=False, **margins):
    """Asserts that scores["trained"] beats each named reference score by its margin.

    Args:
        metric: what the scores are, for the messages (e.g. "held-out L1").
        scores: {"trained": value, reference name: value, ...}.
        higher_is_better: False for errors and distances (L1, FID), True for PSNR,
            accuracy and the like.
        **margins: {reference name: ratio}. Lower is better: trained must be at most
            ratio * reference (ratio < 1). Higher is better: at least ratio * reference
            (ratio > 1).
    """
    trained = scores["trained"]
    report = ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
    print(f"{metric}: {report}")
    assert margins, "name at least one reference score and its margin"
    for name, ratio in margins.items():
        reference = scores[name]
        if higher_is_better:
            ok = trained >= ratio * reference
            want = f">= {ratio} x {name}"
        else:
            ok = trained <= ratio * reference
            want = f"<= {ratio} x {name}"
        assert ok, (f"{metric}: trained {trained:.4f} is not {want} ({reference:.4f}); "
                    f"ratio {trained / reference:.3f}. All: {report}")
