"""BS3LNet anomaly detection: network.py (the network), blindspot.py (blind-spot training
batches), detector.py (training and scoring)."""
