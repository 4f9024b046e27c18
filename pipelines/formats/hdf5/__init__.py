"""HDF5 sources (LIBERO's robomimic files, EgoDex): the reader and its file layouts."""
