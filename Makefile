# The two commands of the README: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := serve,export,sweep,test,notebook,keras,tensorboard

# Every install goes through the lock (constraints.txt), build dependencies included: the versions CI tested.
LOCK := -c constraints.txt --build-constraint constraints.txt

.PHONY: demo test test-fast lint lock fuzz install system-deps bench bench-smoke bench-load letters clean catalogs readme-settings

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt --upgrade pip
	$(PY) -m pip install -q $(LOCK) -e '.[$(EXTRAS)]'
	@# the C kernels of the fused layers (src/convscope/models/kernels), so the first fit does not build them;
	@# without a C compiler this says so and convscope keeps torch's eager layers
	$(PY) -m convscope.models.native
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/convscope train

# The README's option list of `convscope train`, written from the settings table (a test keeps the two equal).
readme-settings: install
	$(PY) tools/readme_settings.py

# Debian's Chromium for the browser tests, fonts, a C compiler and PostgreSQL; each skipped where it is already installed.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }
	@# the DejaVu and Liberation fonts the framing tests (tests/glyphs.py) render letters and digits from
	@{ [ -d /usr/share/fonts/truetype/dejavu ] && [ -d /usr/share/fonts/truetype/liberation ]; } || { \
	  FONTS="fonts-dejavu fonts-liberation fontconfig"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$FONTS >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$FONTS >/dev/null; fi; }
	@# a C compiler for the fused layers' kernels (src/convscope/models/native.py builds them at first use)
	@command -v cc >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; fi; }
	@# PostgreSQL for the shared-study sweep tests (tests/postgres.py starts a throwaway server of its own;
	@# the package's default cluster is not used)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi; }

test: install system-deps
	$(PY) -m pytest

# The tests without a marker (pyproject.toml: slow, browser, ddp, postgres, network): under two minutes on 2 cores,
# with no Chromium, PostgreSQL or second process needed. `make test` still runs everything.
FAST := not (slow or browser or ddp or postgres or network)

test-fast: install
	$(PY) -m pytest -m '$(FAST)'

# Message catalogs (README: 한국어): extract every marked string (`_()`, `ngettext`, the templates' `{% trans %}`)
# into the template, add new ones to each language's .po (untranslated, never guessed fuzzy) and drop unused ones;
# then compile, as every build does (setup.py), so the tests see the new text at once.
LOCALE := src/convscope/locale

catalogs: install
	$(VENV)/bin/pybabel -q extract -F babel.cfg --no-location --sort-output --project convscope \
	  --copyright-holder "convscope authors" --msgid-bugs-address "" -o $(LOCALE)/convscope.pot .
	$(VENV)/bin/pybabel -q update -i $(LOCALE)/convscope.pot -d $(LOCALE) -D convscope -l ko \
	  --no-fuzzy-matching --ignore-obsolete --init-missing
	$(VENV)/bin/pybabel -q compile -d $(LOCALE) -D convscope --statistics

# ruff (lint and format), mypy (types, src/) and import-linter (imports flow one way: the contracts in pyproject.toml).
$(VENV)/.lint-installed: $(VENV)/.installed
	$(PY) -m pip install -q $(LOCK) -e '.[$(EXTRAS),lint]'
	touch $@

lint: $(VENV)/.lint-installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The fuzz suite with thousands of examples per property instead of the CI few (README: Bad input).
fuzz: install
	CONVSCOPE_FUZZ=long $(PY) -m pytest tests/test_fuzz_loaders.py tests/test_fuzz_spec.py tests/test_fuzz_cli.py \
	  tests/test_fuzz_server.py tests/test_fuzz_runs.py tests/test_fuzz_keras.py -p no:cacheprovider

# The Keras comparison of BENCHMARKS.md: TensorFlow and JAX for the peer come with the bench extra (PyTorch is there).
BENCH_OUT ?= runs/bench

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q $(LOCK) -e '.[$(EXTRAS),bench]'
	touch $@

# The full run, about 16 minutes on 2 cores; tables in $(BENCH_OUT)/results.md. Keras runs on every backend
# installed (TensorFlow, PyTorch, JAX). On the letters below: `make bench BENCH_DATA=runs/bench/letters.npz
# BENCH_ARGS='--target-accuracy 0.95'` (BENCH_ARGS: any other option of benchmarks/run.py).
BENCH_DATA ?=
BENCH_ARGS ?=

bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks.run --out $(BENCH_OUT) $(if $(BENCH_DATA),--data $(BENCH_DATA)) $(BENCH_ARGS)

# A notMNIST-like letters set held back from the repository (benchmarks/letters.py): A-J in each font of these
# Debian packages, fetched with `apt-get download` and unpacked under $(BENCH_OUT)/fonts (nothing is installed, so
# the fonts the tests render stay the same); without apt-get, the fonts fontconfig knows. About 30 s on 2 cores.
LETTER_FONTS := fonts-dustin fonts-aenigma fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis \
  fonts-adf-gillius fonts-adf-ikarius fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania \
  fonts-adf-romande fonts-adf-solothurn fonts-adf-switzera fonts-adf-tribun fonts-adf-universalis fonts-adf-verana \
  fonts-noto-core fonts-freefont-ttf fonts-urw-base35 fonts-texgyre fonts-crosextra-caladea fonts-crosextra-carlito \
  fonts-comic-neue fonts-breip fonts-femkeklaver fonts-humor-sans fonts-blankenburg fonts-cabinsketch \
  fonts-league-spartan fonts-league-mono fonts-lato fonts-open-sans fonts-roboto-unhinted fonts-roboto-slab \
  fonts-linuxlibertine fonts-paratype fonts-mplus fonts-quicksand fonts-jura fonts-ecolier-court \
  fonts-ecolier-lignes-court fonts-3270 fonts-agave fonts-allerta fonts-anonymous-pro fonts-apropal fonts-arapey \
  fonts-averia-gwf fonts-averia-sans-gwf fonts-averia-serif-gwf fonts-b612 fonts-bebas-neue fonts-beteckna \
  fonts-cabin fonts-cantarell fonts-century-catalogue fonts-cherrybomb fonts-clear-sans fonts-cmu fonts-comfortaa \
  fonts-courier-prime fonts-creep2 fonts-dancingscript fonts-dkg-handwriting fonts-dosis fonts-ebgaramond \
  fonts-elstob fonts-engadget fonts-essays1743 fonts-eurofurence fonts-f500 fonts-fantasque-sans fonts-fanwood \
  fonts-firacode fonts-gfs-artemisia fonts-gfs-baskerville fonts-gfs-bodoni-classic fonts-gfs-didot \
  fonts-gfs-neohellenic fonts-gfs-olga fonts-gfs-porson fonts-gfs-solomos fonts-georgewilliams fonts-gnutypewriter \
  fonts-go fonts-gotico-antiqua fonts-goudybookletter fonts-hack-ttf fonts-inconsolata fonts-inter fonts-isabella \
  fonts-jetbrains-mono fonts-junction fonts-junicode fonts-karla fonts-kaushanscript fonts-klaudia-berenika \
  fonts-kristi fonts-le-murmure fonts-leckerli-one fonts-lemonada fonts-levien-museum fonts-levien-typoscript \
  fonts-lindenhill fonts-lobster fonts-lobstertwo fonts-manrope fonts-millimetre fonts-monofur fonts-mononoki \
  fonts-national-park fonts-ocr-a fonts-ocr-b fonts-oflb-euterpe fonts-oldstandard fonts-opendin fonts-opendyslexic \
  fonts-osifont fonts-play fonts-prociono fonts-quattrocento fonts-radisnoir fonts-rampart fonts-roadgeek \
  fonts-routed-gothic fonts-rufscript fonts-sil-andika fonts-sil-charis fonts-sil-doulos fonts-sil-gentiumplus \
  fonts-solide-mirage fonts-sora fonts-staypuft fonts-stix fonts-summersby fonts-tiresias fonts-tomsontalks \
  fonts-train fonts-tuffy fonts-ubuntu-title fonts-uralic fonts-vollkorn fonts-yanone-kaffeesatz fonts-yrsa-rasa \
  fonts-tlwg-garuda-ttf fonts-tlwg-kinnari-ttf fonts-tlwg-laksaman-ttf fonts-tlwg-loma-ttf fonts-tlwg-mono-ttf \
  fonts-tlwg-norasi-ttf fonts-tlwg-purisa-ttf fonts-tlwg-sawasdee-ttf fonts-tlwg-typewriter-ttf \
  fonts-tlwg-typist-ttf fonts-tlwg-typo-ttf fonts-tlwg-umpush-ttf fonts-tlwg-waree-ttf fonts-unfonts-core \
  fonts-lmodern fonts-oxygen fonts-liberation2 fonts-croscore fonts-bajaderka fonts-karmilla fonts-havana \
  fonts-gamaliel fonts-campania fonts-cardo fonts-hermit fonts-sixtyfour fonts-fantasma fonts-libfinal \
  fonts-dclfonts fonts-compagnon fonts-joscelyn fonts-okolaks fonts-arkpandora fonts-mph-2b-damase fonts-baekmuk \
  fonts-wine fonts-symbola fonts-opensymbol
FONTS_DIR := $(BENCH_OUT)/fonts

letters: $(VENV)/.installed
	@if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then \
	  mkdir -p $(FONTS_DIR)/debs && cd $(FONTS_DIR)/debs && apt-get download -qq $(LETTER_FONTS) && \
	  for deb in *.deb; do dpkg-deb -x "$$deb" ../files; done; fi
	$(PY) -m benchmarks.letters --out $(BENCH_OUT)/letters.npz $$([ -d $(FONTS_DIR)/files ] && echo --fonts $(FONTS_DIR)/files)

# CI: one short repetition on 1,200 images so the benchmark code cannot rot; it asserts no threshold.
bench-smoke: $(VENV)/.bench-installed
	$(PY) -m benchmarks.run --smoke --out $(BENCH_OUT)/smoke

# Speed on a shared CPU: both sides with 0, 1 and 2 busy background processes, and the server's /predict;
# about 15 minutes.
bench-load: $(VENV)/.bench-installed
	$(PY) -m benchmarks.under_load --out $(BENCH_OUT)/load

# Rewrites the lock: a fresh venv resolves constraints.in's hand-chosen pins with every extra CI installs (and the
# build's own requirements), and its `pip freeze` becomes constraints.txt under the header that says so.
LOCK_VENV := .lock-venv

lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q -c constraints.in --upgrade pip 'setuptools>=68' 'Babel>=2.12'
	$(LOCK_VENV)/bin/python -m pip install -q -c constraints.in -e '.[$(EXTRAS),lint,bench]'
	{ grep '^#' constraints.txt; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | sed 's/+cpu$$//'; \
	} > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) runs .pytest_cache
