"""The hsi-detect benchmark (`make bench`, `make bench-quick`): accuracy, speed and memory of
the detectors on the real scenes, beside published figures and the classical baselines.

Each run happens in a fresh child process (bench.worker) so that its wall time and peak
resident memory are its own; finished runs are cached under bench/work/ so that a long
benchmark can be run in parts and resumed. Entry point: ``python -m bench.run``.
bench/studies holds the studies that chose the networks' defaults (its README lists them).
"""
