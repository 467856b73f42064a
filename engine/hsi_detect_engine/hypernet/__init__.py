"""HyperNet change detection: network.py (the network and its global statistics),
training_pixels.py (which pixels train it), features.py (whole-image or tiled features),
detector.py (training and the change scores)."""
