"""Time `cs.fit` on 4,000 mnist-5k images for the tree on PYTHONPATH (public API only, so two trees whose
internals differ run the same script); prints one JSON line.

    PYTHONPATH=/other/tree/src python benchmarks/fit_timing.py fp32 2   # precision, torch threads

The first 4,000 images are sorted by class and fit's validation_split holds out the last fifth (sixes and
sevens the model never trains on), so the validation accuracy it prints is not a quality measure: the
script is for time only."""

import json
import sys
import time

import numpy as np

import convscope as cs

precision, threads = sys.argv[1], int(sys.argv[2])
data = cs.load("mnist-5k")
train = data.subset(np.arange(4000))
model = cs.build("cnn", input_shape=data.input_shape, num_classes=data.num_classes)
t = time.perf_counter()
out = cs.fit(
    model,
    train,
    epochs=3,
    batch_size=32,
    validation_split=0.2,
    precision=precision,
    seed=0,
    verbose=False,
    threads=threads,
)
h = out.history
seconds = round(time.perf_counter() - t, 2)
print(json.dumps({"precision": precision, "seconds": seconds, "val_accuracy": h.rows[-1].get("val_accuracy")}))
