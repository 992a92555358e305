"""Bridges to other frameworks: Keras `.keras` / `.h5` files in (`keras_import`) and out (`keras_export`).

Neither direction needs TensorFlow or Keras: the files are zip archives, JSON and HDF5.
"""
