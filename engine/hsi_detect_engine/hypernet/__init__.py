"""HyperNet change detection: network.py (the network and its global statistics),
training_pixels.py (which pixels train it), features.py (whole-image or tiled features),
layerwise.py (tiled features layer by layer),
detector.py (training and the change scores)."""
