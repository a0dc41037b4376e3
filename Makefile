# Makefile for the loyalty extension (plain PGXS).
#
#   make && sudo make install      build and install into $(pg_config)
#   make installcheck              pg_regress against a running server
#   make isolationcheck            isolation specs against a running server
#   make WERROR=1                  warnings are errors (CI does this)
#   sudo make bench BENCH_ARGS="--scale chain"   the benchmarks (bench/run)
#
# scripts/test.sh runs the whole suite on throwaway clusters; use that.

EXTENSION   = loyalty
MODULE_big  = loyalty
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c))) \
              $(patsubst %.cpp,%.o,$(sort $(wildcard src/*.cpp)))
DATA        = $(sort $(wildcard extension/loyalty--*.sql))
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags icu-uc icu-i18n)
# ICU formats customer messages (src/icu_format.cpp); C++ for its named arguments
SHLIB_LINK  = $(shell pkg-config --libs icu-uc icu-i18n) -lstdc++
PG_CXXFLAGS = -fPIC -Wextra -Wno-unused-parameter
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
ifdef WERROR
PG_CFLAGS  += -Werror
PG_CXXFLAGS += -Werror
endif

# pg_regress: every sql/NAME.sql, in name order
REGRESS      = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=$(srcdir)

# isolation specs live in test/isolation (run by the isolationcheck target)
ISOLATION_SPECS = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))

EXTRA_CLEAN = results regression.diffs regression.out test/isolation/results \
              test/isolation/output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild every object when any header
# changes, so a changed struct can never meet a stale object
$(OBJS): $(wildcard src/*.h src/*/*.h)

pg_isolation_regress = $(dir $(PGXS))../../src/test/isolation/pg_isolation_regress

# the benchmarks on a throwaway cluster (bench/run --help for options)
.PHONY: bench
bench:
	bench/run $(BENCH_ARGS)

.PHONY: isolationcheck
isolationcheck:
	$(pg_isolation_regress) --inputdir=$(srcdir)/test/isolation \
	  --outputdir=test/isolation/results --bindir='$(bindir)' \
	  --dbname=isolation_regression $(ISOLATION_SPECS)

# the router's companion extension loyalty_router (router/, docs/scale-out.md)
# is built and installed with the extension
.PHONY: router router-install router-clean
all: router
router:
	$(MAKE) -C router PG_CONFIG=$(PG_CONFIG) $(if $(WERROR),WERROR=1)
install: router-install
router-install:
	$(MAKE) -C router PG_CONFIG=$(PG_CONFIG) install
clean: router-clean
router-clean:
	$(MAKE) -C router PG_CONFIG=$(PG_CONFIG) clean
