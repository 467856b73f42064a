# hsi-detect: set-up, demo, tests, benchmark and plugin package.
# Every target that runs code depends on `install`, which is idempotent.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis gdal-bin python3-gdal python3-venv
# The venv is made from the system's Python, the one QGIS's and GDAL's bindings are built for
# (Debian 12: 3.11, Debian 13: 3.13), and sees its packages (--system-site-packages).
SYSTEM_PYTHON ?= /usr/bin/python3
TORCH_VERSION ?= 2.13.0
# Which torch build: auto (default) takes a CPU build, from a local CPU wheel for this Python
# where one lies in pip's find-links (/opt/wheels, the reference machines), else from PyTorch's
# CPU index, and where that index cannot be reached from PyPI (whose Linux build is a CUDA
# build: larger, and it runs on the CPU too). For CUDA: make install TORCH_INDEX=pypi, or
# TORCH_INDEX=<PyTorch's index for your CUDA version>.
TORCH_INDEX ?= auto
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_FLAVOUR := $(if $(filter auto,$(TORCH_INDEX))$(findstring /cpu,$(TORCH_INDEX)),cpu,cuda)
STAMP := $(VENV)/.installed-$(TORCH_FLAVOUR)
# numpy as the system's GDAL bindings need it: pip may never swap it for another major version.
NUMPY_CONSTRAINT := $(VENV)/constraints-numpy.txt
export QT_QPA_PLATFORM ?= offscreen

.PHONY: install demo test bench bench-quick package clean

install: $(STAMP)

$(STAMP): engine/pyproject.toml requirements-test.txt constraints.txt Makefile
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
	  echo "Installing QGIS and GDAL from apt: $(APT_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; }
	@[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	@SYSTEM_NUMPY=$$($(SYSTEM_PYTHON) -c "import numpy; print(numpy.__version__)") || exit 1; \
	  MAJOR=$${SYSTEM_NUMPY%%.*}; \
	  echo "# written by make install: the system's GDAL bindings are built against numpy $$SYSTEM_NUMPY" > $(NUMPY_CONSTRAINT); \
	  echo "numpy>=$$MAJOR,<$$((MAJOR + 1))" >> $(NUMPY_CONSTRAINT); \
	  echo "System Python $$($(SYSTEM_PYTHON) -c 'import platform; print(platform.python_version())'), numpy $$SYSTEM_NUMPY: constraining numpy>=$$MAJOR,<$$((MAJOR + 1))"
	@$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_VERSION)' \
	    or ('$(TORCH_INDEX)' != 'auto' and ('$(TORCH_FLAVOUR)' == 'cuda') != (torch.version.cuda is not None)))" 2>/dev/null || { \
	  PIP="$(PY) -m pip install -q -c constraints.txt -c $(NUMPY_CONSTRAINT)"; \
	  TAG=$$($(PY) -c "import sys; print('cp%d%d' % sys.version_info[:2])"); \
	  $(PY) -m pip uninstall -q -y torch >/dev/null 2>&1; \
	  case "$(TORCH_INDEX)" in \
	  auto) \
	    if ls /opt/wheels/torch-$(TORCH_VERSION)+cpu-$$TAG-*.whl >/dev/null 2>&1; then \
	      echo "Installing torch $(TORCH_VERSION), CPU build (local wheel for $$TAG)"; \
	      $$PIP torch==$(TORCH_VERSION); \
	    elif echo "Installing torch $(TORCH_VERSION), CPU build ($(TORCH_CPU_INDEX))" && \
	         $$PIP --retries 1 --timeout 30 --index-url $(TORCH_CPU_INDEX) torch==$(TORCH_VERSION); then :; \
	    else \
	      echo "PyTorch's CPU index cannot be reached: installing torch $(TORCH_VERSION) from PyPI (a CUDA build, several GB; it runs on the CPU too)"; \
	      $$PIP torch==$(TORCH_VERSION); \
	    fi ;; \
	  pypi) echo "Installing torch $(TORCH_VERSION) from PyPI"; $$PIP torch==$(TORCH_VERSION) ;; \
	  *) echo "Installing torch $(TORCH_VERSION) from $(TORCH_INDEX)"; $$PIP --index-url $(TORCH_INDEX) torch==$(TORCH_VERSION) ;; \
	  esac; }
	$(PY) -m pip install -q -c constraints.txt -c $(NUMPY_CONSTRAINT) -e engine -r requirements-test.txt
	@$(PY) -c "from osgeo import gdal, gdal_array; import numpy, torch, qgis.core, sys; print('ready: Python', sys.version.split()[0], '| QGIS', qgis.core.Qgis.QGIS_VERSION, '| GDAL', gdal.__version__, '| numpy', numpy.__version__, '| torch', torch.__version__)"
	@touch $@

demo: install
	$(PY) scripts/demo.py

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) -m bench.run

bench-quick: install
	$(PY) -m bench.run --quick

package: install
	$(PY) scripts/package.py

clean:
	rm -rf dist build .pytest_cache
