# omnigate — one GNU Makefile (STYLE §20).
#   make            build/omnigate and build/omnigate-substrate
#   make check      every suite: unit (plain, ASan+UBSan, valgrind), instruction and
#                   allocation budgets, fuzz replay, integration; ends with one
#                   "N passed, N failed" line
#   make asan       the same binaries and unit tests built with ASan+UBSan
#   make fuzz       libFuzzer targets run for FUZZ_SECONDS each
#   make bench      micro-benchmarks and load scripts (see docs/PERFORMANCE.md)
#   make perf       the standard load suite, JSON results in build/perf/ (PERF_ARGS=--quick)
#   make run        start micronode with demo data
#   make cluster-test  scale-out scenarios in network namespaces (root)
# Sources are found by wildcard: a new file in a known folder needs no edit here.

CC       ?= gcc
BUILD    ?= build
SAN      ?=
FUZZ_SECONDS ?= 10

PKGS     := libuv jansson inih libzstd libcrypto zlib
BLAKE3_DIR := $(lastword $(sort $(wildcard /usr/share/cargo/registry/blake3-*/c)))
LLHTTP_DIR := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CSTD     := -std=gnu17 -D_GNU_SOURCE
OPT      ?= -O2 -g
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all,)
INCS     := -Iinclude -Isrc -I. -I$(LLHTTP_INC) -I$(BLAKE3_DIR)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL := $(CSTD) $(OPT) $(WARN) $(SANFLAGS) $(INCS) $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) -lpthread -lm $(LDLIBS)

# Our sources, by layer.
LIB_SRCS    := $(wildcard lib/*/*.c)
CORE_SRCS   := $(filter-out src/main.c,$(wildcard src/*/*.c))
ENGINE_SRCS := $(wildcard engines/*/*.c)
# services/*/ holds service modules free of the process's globals (the log):
# in the library, so that unit tests and fuzz targets link them too.
SVCLIB_SRCS := $(wildcard services/*/*.c)
SVC_SRCS    := $(wildcard services/*.c)
UNIT_SRCS   := $(wildcard tests/unit/*.c tests/unit/*/*.c)
BENCH_SRCS  := $(wildcard bench/*.c)
FUZZ_SRCS   := $(wildcard tests/fuzz/*.c)

# Third-party sources compiled from where their Debian packages put them (§12).
LLHTTP_SRCS := $(LLHTTP_DIR)/llhttp.c $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c
BLAKE3_SRCS := $(addprefix $(BLAKE3_DIR)/,blake3.c blake3_dispatch.c blake3_portable.c)
BLAKE3_ASM  := $(addprefix $(BLAKE3_DIR)/,blake3_sse2_x86-64_unix.S \
               blake3_sse41_x86-64_unix.S blake3_avx2_x86-64_unix.S \
               blake3_avx512_x86-64_unix.S)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
TP_OBJS := $(patsubst $(LLHTTP_DIR)/%.c,$(BUILD)/tp/llhttp/%.o,$(LLHTTP_SRCS)) \
           $(patsubst $(BLAKE3_DIR)/%.c,$(BUILD)/tp/blake3/%.o,$(BLAKE3_SRCS)) \
           $(patsubst $(BLAKE3_DIR)/%.S,$(BUILD)/tp/blake3/%.o,$(BLAKE3_ASM))
LIB_OBJS := $(call obj,$(LIB_SRCS) $(CORE_SRCS) $(ENGINE_SRCS) $(SVCLIB_SRCS)) $(TP_OBJS)
LIBOG    := $(BUILD)/libomnigate.a

OMNIGATE  := $(BUILD)/omnigate
SUBSTRATE := $(BUILD)/omnigate-substrate
UNIT_BIN  := $(BUILD)/test-unit
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

.PHONY: all check unit asan valgrind fuzz fuzz-build fuzz-replay bench perf run clean format integration cluster-test
all: $(OMNIGATE) $(SUBSTRATE)

# Changed flags force a rebuild.
FLAGS_STAMP := $(BUILD)/.flags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS_ALL) $(LDLIBS_ALL)' | cmp -s - $@ || echo '$(CC) $(CFLAGS_ALL) $(LDLIBS_ALL)' > $@
FORCE:

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/tp/llhttp/%.o: $(LLHTTP_DIR)/%.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(OPT) $(SANFLAGS) -w -I$(LLHTTP_INC) -c $< -o $@
$(BUILD)/tp/blake3/%.o: $(BLAKE3_DIR)/%.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(OPT) $(SANFLAGS) -w -I$(BLAKE3_DIR) -c $< -o $@
$(BUILD)/tp/blake3/%.o: $(BLAKE3_DIR)/%.S $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -c $< -o $@

$(LIBOG): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(OMNIGATE): $(call obj,src/main.c) $(LIBOG)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(SUBSTRATE): $(call obj,$(SVC_SRCS)) $(LIBOG)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS_ALL)

# malloc is wrapped so that tests can make it fail (tests/unit/fault.h).
$(UNIT_BIN): $(call obj,$(UNIT_SRCS)) $(LIBOG)
	$(CC) $(SANFLAGS) -Wl,--wrap=malloc -o $@ $^ $(LDLIBS_ALL) -lcriterion

# Keep the bench objects (pattern-rule intermediates) so make does not print
# their removal after the last line of a run.
.SECONDARY: $(call obj,$(BENCH_SRCS))
$(BUILD)/bench/%: $(call obj,bench/%.c) $(LIBOG)
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS_ALL)

unit: $(UNIT_BIN)
	$(UNIT_BIN) --ascii -j2

asan:
	$(MAKE) BUILD=build/asan SAN=address,undefined OPT='-O1 -g' all build/asan/test-unit

valgrind: $(UNIT_BIN)
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --show-leak-kinds=definite,indirect --trace-children=yes \
	    $(UNIT_BIN) --ascii -j$$(nproc) --no-early-exit

# libFuzzer targets: clang, ASan+UBSan, one binary per tests/fuzz/*.c. The
# library is compiled once with coverage instrumentation (fuzzer-no-link)
# into an archive that every target links, so a target costs one compile.
FUZZ_CC    := clang-14
FUZZ_SAN   := -O1 -g -fno-sanitize-recover=all
FUZZ_FLAGS := $(CSTD) $(FUZZ_SAN) -fsanitize=fuzzer,address,undefined $(INCS) $(PKG_CFLAGS)
FUZZ_OBJCFLAGS := $(CSTD) $(FUZZ_SAN) -fsanitize=fuzzer-no-link,address,undefined $(INCS) $(PKG_CFLAGS) -w
FUZZ_OBJ   := build/fuzz/obj
FUZZ_LIB   := build/fuzz/libomnigate-fuzz.a
FUZZ_LIBOBJS := $(patsubst %.c,$(FUZZ_OBJ)/%.o,$(LIB_SRCS) $(CORE_SRCS) $(ENGINE_SRCS) $(SVCLIB_SRCS)) \
           $(patsubst $(LLHTTP_DIR)/%.c,$(FUZZ_OBJ)/tp/llhttp/%.o,$(LLHTTP_SRCS)) \
           $(patsubst $(BLAKE3_DIR)/%.c,$(FUZZ_OBJ)/tp/blake3/%.o,$(BLAKE3_SRCS)) \
           $(patsubst $(BLAKE3_DIR)/%.S,$(FUZZ_OBJ)/tp/blake3/%.o,$(BLAKE3_ASM))
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
$(FUZZ_OBJ)/tp/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_OBJCFLAGS) -I$(LLHTTP_INC) -c $< -o $@
$(FUZZ_OBJ)/tp/blake3/%.o: $(BLAKE3_DIR)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_OBJCFLAGS) -I$(BLAKE3_DIR) -c $< -o $@
$(FUZZ_OBJ)/tp/blake3/%.o: $(BLAKE3_DIR)/%.S
	@mkdir -p $(@D)
	$(FUZZ_CC) -c $< -o $@
$(FUZZ_OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_OBJCFLAGS) -c $< -o $@
$(FUZZ_LIB): $(FUZZ_LIBOBJS)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -w $< $(FUZZ_LIB) -o $@ $(PKG_LIBS) -lpthread -lm
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build/fuzz/new-$$n; \
	  echo "fuzz $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/new-$$n tests/fuzz/corpus/$$n \
	     $$( [ -f tests/fuzz/$$n.dict ] && echo -dict=tests/fuzz/$$n.dict ) 2>&1 | tail -3 || exit 1; done

bench: all $(BENCH_BINS)
	scripts/bench-all

# The standard load suite; PERF_ARGS=--quick for the short one.
perf: all $(BENCH_BINS)
	scripts/perf $(PERF_ARGS)

check: all $(UNIT_BIN) $(BENCH_BINS)
	scripts/run-checks

# Scale-out scenarios: replicas behind HAProxy, substrate nodes, each in a
# network namespace (testing/cluster/). Needs root; prints one SKIP line and
# succeeds where the namespaces cannot be made.
cluster-test: all
	@testing/cluster/run; rc=$$?; [ $$rc -eq 77 ] || exit $$rc

run: all
	$(OMNIGATE) --demo

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
