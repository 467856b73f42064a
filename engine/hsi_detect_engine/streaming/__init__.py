"""Streamed classical detection (RX, CVA) for scenes larger than the run's memory limit.

The image is read in windows of rows (sized by the limit, aligned to the file's blocks);
statistics are accumulated over the windows in float64 (statistics.py); scores are
written straight into the output rasters window by window, and what needs the whole score
(the 0..1 normalisation, the automatic thresholds) is taken from further passes over the
one-band rasters already written (scores.py). Results equal the in-memory path's up to
float rounding.
"""
