# dmvjnd build. `make` builds the library and the CLI, `make check` builds and
# runs every test, `make asan` runs the tests under AddressSanitizer + UBSan.
#
# Layout: src/<area>/*.c -> libdmvjnd.{a,so}; cli/*.c -> dmvjnd;
#         tests/test_<module>.c -> one test program per module.

BUILD   ?= build
CC      ?= cc
PREFIX  ?= /usr/local
# The machines this project runs on have AVX-512; override ARCH for others.
ARCH    ?= -march=native
OPT     ?= -O3
SAN     ?=
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE
CFLAGS  += -std=c11 $(OPT) $(ARCH) -g -fPIC -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter -fno-math-errno $(SAN)
LDLIBS  += -ldnnl -lpng -ljpeg -lwebp -lz -lm
LDFLAGS += -fopenmp $(SAN)

SRC     := $(sort $(wildcard src/*/*.c))
OBJ     := $(SRC:%.c=$(BUILD)/%.o)
CLI_SRC := $(sort $(wildcard cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC:= $(sort $(wildcard tests/test_*.c))
TESTS   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Header dependencies: each object and program gets a .d file from the
# compiler (-MMD) listing the headers it includes; -MP keeps a deleted
# header from breaking the build.
DEPFLAGS = -MMD -MP
# The folder `make install` puts the shipped models in; compiled into
# src/util/model_find.c through a generated header that changes only when
# PREFIX does (so a new PREFIX rebuilds that one object).
MODEL_DIR = $(PREFIX)/share/dmvjnd/models
GEN     := $(BUILD)/gen

.PHONY: all lib cli tests tools check asan install uninstall clean bench parity

all: lib cli

lib: $(BUILD)/libdmvjnd.a $(BUILD)/libdmvjnd.so
cli: $(BUILD)/dmvjnd
tests: $(TESTS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(DEPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/src/util/model_find.o: $(GEN)/model_dir.h
$(BUILD)/src/util/model_find.o: CPPFLAGS += -I$(GEN)

.PHONY: FORCE
$(GEN)/model_dir.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define DJ_MODEL_DIR "%s"\n' '$(MODEL_DIR)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(BUILD)/libdmvjnd.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libdmvjnd.so: $(OBJ)
	$(CC) -shared -Wl,-soname,libdmvjnd.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/dmvjnd: $(CLI_OBJ) $(BUILD)/libdmvjnd.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libdmvjnd.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libdmvjnd.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(DEPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdmvjnd.a $(LDLIBS)

# Developer tools (tools/*.c), e.g. parity_dump for tools/torch/run_parity.sh.
TOOL_SRC:= $(sort $(wildcard tools/*.c))
TOOLS   := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)
tools: $(TOOLS)

$(BUILD)/tools/%: tools/%.c $(BUILD)/libdmvjnd.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(DEPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdmvjnd.a $(LDLIBS)

# C builders against their PyTorch twins (needs torch; see tools/torch/run_parity.sh).
parity: $(BUILD)/tools/parity_dump
	@BUILD=$(BUILD) sh tools/torch/run_parity.sh

# The JND E-D and losses against tools/torch/jnd.py (needs torch; ~4 s).
.PHONY: parity-jnd
parity-jnd: $(BUILD)/tools/jnd_dump
	@$(PYTHON) tools/torch/check_jnd.py --dump $(BUILD)/tools/jnd_dump

TORCH_TESTS := $(sort $(wildcard tests/torch/test_*.sh))
PYTHON  ?= /usr/bin/python3

# Runs every test program, the install test (tests/test_install.sh), and the
# PyTorch parity checks when torch exists.
check: all $(TESTS) $(TOOLS)
	@if $(PYTHON) -c "import torch" 2>/dev/null; then t="$(TORCH_TESTS)"; \
	 elif [ "$${DMVJND_REQUIRE_ALL:-0}" = 1 ] && [ "$${DMVJND_NO_TORCH:-0}" != 1 ]; then \
	   echo "DMVJND_REQUIRE_ALL=1: PyTorch is not installed, the parity checks cannot run (DMVJND_NO_TORCH=1 leaves them out)"; exit 1; \
	 else echo "note: PyTorch not installed, parity checks skipped"; t=""; fi; \
	 BUILD=$(BUILD) OPT="$(OPT)" SAN="$(SAN)" sh tests/run.sh $(TESTS) tests/test_install.sh $$t

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" check

bench: all
	$(BUILD)/dmvjnd bench --model resnet20 --batch 128

# The shipped models: every models/*.safetensors and the jnd-alloc
# calibrations beside them, models/*.alloc-*.json (docs/install.md).
MODELS  := $(sort $(wildcard models/*.safetensors models/*.alloc-*.json))

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/dmvjnd $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -d $(DESTDIR)$(MODEL_DIR)
	install -m 644 $(MODELS) $(DESTDIR)$(MODEL_DIR)/
	install -m 644 $(BUILD)/libdmvjnd.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libdmvjnd.so $(DESTDIR)$(PREFIX)/lib/libdmvjnd.so.0
	ln -sf libdmvjnd.so.0 $(DESTDIR)$(PREFIX)/lib/libdmvjnd.so
	install -m 644 include/dmvjnd/*.h $(DESTDIR)$(PREFIX)/include/dmvjnd/
	install -m 755 $(BUILD)/dmvjnd $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/.*DJ_VERSION_STRING "\(.*\)"/\1/p' include/dmvjnd/dmvjnd.h)|' \
	    dmvjnd.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/dmvjnd.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/dmvjnd $(DESTDIR)$(PREFIX)/lib/libdmvjnd.* \
	       $(DESTDIR)$(PREFIX)/bin/dmvjnd $(DESTDIR)$(PREFIX)/lib/pkgconfig/dmvjnd.pc
	rm -f $(addprefix $(DESTDIR)$(MODEL_DIR)/,$(notdir $(MODELS)))
	rmdir $(DESTDIR)$(MODEL_DIR) $(DESTDIR)$(PREFIX)/share/dmvjnd 2>/dev/null || true

# libFuzzer harnesses (clang), FUZZ_SECONDS each; see tests/fuzz/run.sh.
.PHONY: fuzz
fuzz:
	bash tests/fuzz/run.sh

clean:
	rm -rf build build-asan build-fuzz build-valgrind

-include $(OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TESTS:=.d) $(TOOLS:=.d)
