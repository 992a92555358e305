"""Bridges from other frameworks: Keras `.keras` / `.h5` files in (`keras_import`); out is `convscope.export`.

Reading them needs neither TensorFlow nor Keras: the files are zip archives, JSON and HDF5.
"""
