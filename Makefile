# hsi-detect: set-up, demo, tests, benchmark and plugin package.
# Every target that runs code depends on `install`, which is idempotent.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis gdal-bin python3-gdal python3-venv
TORCH_VERSION ?= 2.13.0
# CPU build by default: a local CPU wheel where one lies in pip's find-links (this
# reference machine), else PyTorch's CPU index. For CUDA: make install TORCH_INDEX=pypi
TORCH_INDEX ?= $(if $(wildcard /opt/wheels/torch-$(TORCH_VERSION)+cpu-*.whl),local,https://download.pytorch.org/whl/cpu)
TORCH_FLAVOUR := $(if $(filter local,$(TORCH_INDEX))$(findstring /cpu,$(TORCH_INDEX)),cpu,cuda)
STAMP := $(VENV)/.installed-$(TORCH_FLAVOUR)
export QT_QPA_PLATFORM ?= offscreen

.PHONY: install demo test bench bench-quick package clean

install: $(STAMP)

$(STAMP): engine/pyproject.toml requirements-test.txt constraints.txt Makefile
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
	  echo "Installing QGIS and GDAL from apt: $(APT_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; }
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_VERSION)' \
	    or ('$(TORCH_FLAVOUR)' == 'cuda') != (torch.version.cuda is not None))" 2>/dev/null || { \
	  echo "Installing torch $(TORCH_VERSION), $(TORCH_FLAVOUR) build ($(TORCH_INDEX))"; \
	  if [ "$(TORCH_INDEX)" = local ] || [ "$(TORCH_INDEX)" = pypi ]; then INDEX=""; else INDEX="--index-url $(TORCH_INDEX)"; fi; \
	  $(PY) -m pip uninstall -q -y torch >/dev/null 2>&1; \
	  $(PY) -m pip install -q -c constraints.txt $$INDEX torch==$(TORCH_VERSION); }
	$(PY) -m pip install -q -c constraints.txt -e engine -r requirements-test.txt
	@$(PY) -c "from osgeo import gdal; import numpy, torch, qgis.core; print('ready: GDAL', gdal.__version__, '| numpy', numpy.__version__, '| torch', torch.__version__)"
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
