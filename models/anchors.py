"""The trade-offs λ (MSE on 0-255) that a variable-rate model's anchors train at, log-spaced from the
first to the last: plain numbers, so that listing the models needs no torch."""

ANCHOR_RANGE = (0.0005, 0.25)
ANCHOR_COUNT = 9
