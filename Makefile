# Two commands that work on a fresh machine:
#   make demo   set up, build the demo index, show suggestions, start the service, query it
#   make test   set up, lint, and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_INDEX := .recommender/demo-index
LEUKEMIA := what-are-the-latest-advancements-in-radiation-therapy-for-leukemia
export HF_HUB_OFFLINE := 1

.PHONY: setup demo serve test lint clean models bench port-free browser

setup: $(VENV)/.installed

# torch first, pinned to the CPU wheel: otherwise pip pulls a multi-GB CUDA build
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,onnx,distill,ray]"
	touch $@

PORT ?= 8000
# a busy port fails at once (before setup or the build), naming PORT=
port-free:
	@$(PYTHON) demo/check_port.py $(PORT) $(or $(filter demo serve,$(MAKECMDGOALS)),demo)

demo: port-free setup
	$(BIN)/recommender build demo/content --index $(DEMO_INDEX)
	$(BIN)/recommender related $(LEUKEMIA) --index $(DEMO_INDEX) --k 3
	@$(BIN)/recommender serve $(DEMO_INDEX) --port $(PORT) & pid=$$!; \
	  $(BIN)/python demo/request.py http://127.0.0.1:$(PORT); status=$$?; \
	  kill $$pid; wait $$pid 2>/dev/null; exit $$status

serve: port-free setup
	$(BIN)/recommender serve demo/content --index $(DEMO_INDEX) --port $(PORT)

# The /review page's browser tests drive the system's headless Chromium through Selenium
# (installed by setup); without chromium they are skipped, saying why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	   echo "chromium not installed: the browser tests will be skipped")

lint: setup
	$(BIN)/ruff check .

test: lint browser
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .recommender .pytest_cache .ruff_cache

# Locally built encoders (ONNX fp32/int8, the distilled static model): see models/registry.yaml
models: setup
	$(BIN)/python -m benchmarks.build_models onnx onnx-int8 static

# Every benchmark behind a claim in README.md, over a real corpus:
#   make bench CORPUS=../shared/corpora/quicktakes-dev
CORPUS ?= ../shared/corpora/quicktakes-dev
DEV_INDEX := .recommender/dev-index
bench: setup
	$(BIN)/recommender build $(CORPUS) --index $(DEV_INDEX) -q
	$(BIN)/python -m benchmarks.build_corpus $(CORPUS) --out results/build_dev_corpus.json
	$(BIN)/python -m benchmarks.embedding_rate $(CORPUS) --out results/embedding_rate.json
	$(BIN)/python -m benchmarks.quality_frontier $(CORPUS) --out results/quality_frontier.json
	$(BIN)/recommender evaluate $(CORPUS) --output results/evaluation --frontier results/quality_frontier.png
	$(BIN)/python -m benchmarks.fill_dev_corpus $(CORPUS) --suggester index --index $(DEV_INDEX) --out results/fill_dev_corpus.json
	$(BIN)/python -m benchmarks.load_api --index $(DEV_INDEX) --content $(CORPUS) --out results/load_api.json
	$(BIN)/python -m benchmarks.scale $(CORPUS) --out results/scale.json
	$(BIN)/python -m benchmarks.diversity $(CORPUS) --index $(DEV_INDEX) --max-queries 6000 --out results/diversity.json
	$(BIN)/python -m benchmarks.within_negatives $(CORPUS) --out results/within_negatives.json
	$(BIN)/python -m benchmarks.within_negatives $(CORPUS) --whole-corpus --max-queries 6000 --out results/within_negatives_whole.json
	$(BIN)/recommender evaluate $(CORPUS) --methods tfidf,product --product benchmarks/configs/tuned.yaml --output results/evaluation-tuned
