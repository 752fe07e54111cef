# ropeattn — the two set-up commands are `make demo` and `make test`; both
# install what is missing (Debian packages), build, then run.

BUILD_DIR  ?= build
ASAN_DIR   ?= build-asan
PREFIX     ?= $(CURDIR)/install
LIT        ?= $(shell llvm-config-22 --bindir 2>/dev/null)/lit
LIT_FLAGS  ?= -sv

.PHONY: all deps build demo test check check-asan check-format install docs format clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@bash scripts/build.sh $(BUILD_DIR)

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

# Every test suite. Prints lit's summary.
test: build check-format
	@$(LIT) $(LIT_FLAGS) $(BUILD_DIR)/test

check: test

# The lit suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its
# own build directory (libMLIR.so itself is not instrumented).
check-asan: deps
	@bash scripts/build.sh $(ASAN_DIR) -DROPEATTN_ENABLE_SANITIZERS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	@$(LIT) $(LIT_FLAGS) $(ASAN_DIR)/test

install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# Regenerates docs/generated/ (dialect and pass reference) from ODS.
docs: build
	cmake --build $(BUILD_DIR) --target ropeattn-doc

CXX_SOURCES = $(shell git ls-files '*.cpp' '*.h' 2>/dev/null)

format:
	clang-format-22 -i $(CXX_SOURCES)

# LLVM style (.clang-format) is part of the test suite.
check-format: deps
	@clang-format-22 --dry-run --Werror $(CXX_SOURCES) && echo "clang-format: ok"

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)

# The Python package (python/, pure Python) into $(PYTHON)'s environment; it
# finds libRopeAttnCAPI.so as README.md ("Python and the C API") describes.
PYTHON ?= $(CURDIR)/.venv/bin/python
.PHONY: python-install
python-install: build
	$(PYTHON) -m pip install ./python
