"""The napari plugin (`pip install ".[napari]"`): store reader, Restore and Measure widgets (napari.yaml).

Only `adapter` touches the project's own modules; the reader and widgets go through it.
"""
