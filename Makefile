# virtmail — top-level GNU Makefile.
#
#   make              build everything into $(BUILD)/
#   make deps         install the Debian packages the build and tests need
#   make test         build, then run unit and end-to-end tests
#   make check-asan   the same tests built with -fsanitize=address,undefined
#   make run          a two-domain demo in a private network namespace
#   make install PREFIX=/usr/local DESTDIR=

PREFIX	?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR	?=
BUILD	?= build
CC	?= cc
PYTHON	?= /usr/bin/python3

CFLAGS	?= -O2 -g
WARN	 = -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
	   -Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual \
	   -Wsign-compare -Wformat=2
ifeq ($(CI),true)
WARN	+= -Werror
endif
ifneq ($(WERROR),)
WARN	+= -Werror
endif
ifneq ($(SAN),)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=address,undefined
endif

# Platform features, keyed by feature (see common/compat.h).
HAVE_STRLCPY := $(shell printf '#include <string.h>\nint main(void){char b[2];return (int)strlcpy(b,"a",2);}\n' | \
	$(CC) -x c - -o /dev/null 2>/dev/null && echo 1)
FEATURES :=
ifeq ($(HAVE_STRLCPY),1)
FEATURES += -DHAVE_STRLCPY
endif

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(FEATURES) -fstack-protector-strong \
	     -D_FORTIFY_SOURCE=2 $(WARN) $(CFLAGS) -Icommon -Ismtpd -Ipop3d -MMD -MP

COMMON_SRCS = \
	common/address.c \
	common/aliases.c \
	common/auth.c \
	common/buf.c \
	common/colonfile.c \
	common/compat.c \
	common/config.c \
	common/confine.c \
	common/daemon_main.c \
	common/diag.c \
	common/domain.c \
	common/event.c \
	common/fdpass.c \
	common/fileio.c \
	common/group.c \
	common/idrange.c \
	common/line.c \
	common/listen.c \
	common/log.c \
	common/passwd.c \
	common/pidfile.c \
	common/privbind.c \
	common/privdrop.c \
	common/proctitle.c \
	common/queue.c \
	common/relay_inetd.c \
	common/shadow.c \
	common/tls.c \
	common/tls_check.c \
	common/xmalloc.c

VIRTUALD_SRCS = \
	contrib/virtuald/virtuald.c

# Everything of virtmail-pop3d but main(), so unit tests can link it.
POP3D_LIB_SRCS = \
	pop3d/auth.c \
	pop3d/login.c \
	pop3d/mailbox.c \
	pop3d/master.c \
	pop3d/pop3_cmd.c \
	pop3d/pop3_io.c \
	pop3d/pop3_ipc.c \
	pop3d/session.c \
	pop3d/spool.c

POP3D_SRCS = \
	pop3d/pop3d.c

POP3D_UNIT_TESTS = \
	pop3_cmd \
	pop3_mailbox \
	pop3_spool

# Everything of virtmail-smtpd but main(), so unit tests can link it.
SMTPD_LIB_SRCS = \
	smtpd/bounce.c \
	smtpd/conf.c \
	smtpd/deliver_agent.c \
	smtpd/deliver_local.c \
	smtpd/deliver_spool.c \
	smtpd/deliverer.c \
	smtpd/dns.c \
	smtpd/drop.c \
	smtpd/master.c \
	smtpd/master_inetd.c \
	smtpd/milter.c \
	smtpd/mta.c \
	smtpd/mta_session.c \
	smtpd/pickup.c \
	smtpd/runner.c \
	smtpd/runner_ctl.c \
	smtpd/runner_dsn.c \
	smtpd/runner_local.c \
	smtpd/runner_remote.c \
	smtpd/sendmail_msg.c \
	smtpd/smtp_auth.c \
	smtpd/smtp_commit.c \
	smtpd/smtp_data.c \
	smtpd/smtp_direct.c \
	smtpd/smtp_direct_start.c \
	smtpd/smtp_envelope.c \
	smtpd/smtp_headers.c \
	smtpd/smtp_hooks.c \
	smtpd/smtp_replies.c \
	smtpd/smtp_sasl.c \
	smtpd/smtp_server.c \
	smtpd/smtp_session.c \
	smtpd/smtp_tls.c \
	smtpd/smtp_userdb.c \
	smtpd/spf.c

SMTPD_SRCS = \
	smtpd/smtpd.c

SENDMAIL_SRCS = \
	smtpd/sendmail.c

# The setgid drop writer links these and nothing else: no TLS, no SPF,
# no session engine (checked after the link, below).
POSTDROP_SRCS = \
	common/address.c \
	common/buf.c \
	common/compat.c \
	common/fileio.c \
	common/log.c \
	common/xmalloc.c \
	smtpd/drop.c \
	smtpd/postdrop.c

ADMIN_SRCS = \
	admin/admin_check.c \
	admin/admin_domain.c \
	admin/admin_edit.c \
	admin/admin_exec.c \
	admin/admin_fs.c \
	admin/admin_procs.c \
	admin/admin_pty.c \
	admin/admin_queue.c \
	admin/admin_rmtree.c \
	admin/admin_user.c \
	admin/virtmail.c

UNIT_TESTS = \
	address \
	aliases \
	buf \
	config \
	confine \
	domain \
	event \
	idrange \
	line \
	log \
	passwd \
	privdrop \
	proctitle \
	queue \
	tls_check

SMTPD_UNIT_TESTS = \
	bounce \
	deliver \
	drop \
	milter \
	mta \
	pickup \
	sendmail \
	smtp_auth \
	smtp_session

COMMON_OBJS	= $(COMMON_SRCS:%.c=$(BUILD)/%.o)
VIRTUALD_OBJS	= $(VIRTUALD_SRCS:%.c=$(BUILD)/%.o)
POP3D_LIB_OBJS	= $(POP3D_LIB_SRCS:%.c=$(BUILD)/%.o)
POP3D_OBJS	= $(POP3D_SRCS:%.c=$(BUILD)/%.o)
POP3D_UNIT_BINS	= $(POP3D_UNIT_TESTS:%=$(BUILD)/tests/unit/test_%)
SMTPD_LIB_OBJS	= $(SMTPD_LIB_SRCS:%.c=$(BUILD)/%.o)
SMTPD_OBJS	= $(SMTPD_SRCS:%.c=$(BUILD)/%.o)
SENDMAIL_OBJS	= $(SENDMAIL_SRCS:%.c=$(BUILD)/%.o)
POSTDROP_OBJS	= $(POSTDROP_SRCS:%.c=$(BUILD)/%.o)
ADMIN_OBJS	= $(ADMIN_SRCS:%.c=$(BUILD)/%.o)
UNIT_BINS	= $(UNIT_TESTS:%=$(BUILD)/tests/unit/test_%)
SMTPD_UNIT_BINS	= $(SMTPD_UNIT_TESTS:%=$(BUILD)/tests/unit/test_%)

PROGRAMS = \
	$(BUILD)/virtmail \
	$(BUILD)/virtmail-pop3d \
	$(BUILD)/virtmail-postdrop \
	$(BUILD)/virtmail-sendmail \
	$(BUILD)/virtmail-smtpd \
	$(BUILD)/virtuald

LIBS	= -lcrypt -lresolv -lssl -lcrypto
SMTPD_LIBS = -lspf2

.PHONY: all deps test check-asan unit e2e install clean run bench fuzz

all: $(PROGRAMS) $(UNIT_BINS) $(SMTPD_UNIT_BINS) $(POP3D_UNIT_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libcommon.a: $(COMMON_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/virtuald: $(VIRTUALD_OBJS) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libsmtpd.a: $(SMTPD_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/virtmail-smtpd: $(SMTPD_OBJS) $(BUILD)/libsmtpd.a $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(SMTPD_LIBS)

# Static: it runs inside minimal domain roots without shared
# libraries (sanitizers cannot link statically).
ifeq ($(SAN),)
SENDMAIL_LDFLAGS = -static
endif
$(BUILD)/virtmail-sendmail: $(SENDMAIL_OBJS) $(BUILD)/libsmtpd.a \
    $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) $(SENDMAIL_LDFLAGS) -o $@ $^ $(SMTPD_LIBS) -lresolv

# Fails the build when anything of TLS, SPF, the session engine, the
# queue or the runner reaches the setgid program.
POSTDROP_FORBIDDEN = ' (SSL_|EVP_|SPF_|smtp_|smtpd_|runner_|milter_|queue_|mta_|tls_|priv_|sendmail_|pickup_|deliver)'
$(BUILD)/virtmail-postdrop: $(POSTDROP_OBJS)
	$(CC) $(LDFLAGS) $(SENDMAIL_LDFLAGS) -o $@.tmp $^
	@if nm $@.tmp | grep -E $(POSTDROP_FORBIDDEN); then \
	    echo "$@: links code it must not (above)" >&2; \
	    rm -f $@.tmp; exit 1; fi
	mv -f $@.tmp $@

$(BUILD)/virtmail: $(ADMIN_OBJS) $(BUILD)/libsmtpd.a $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(SMTPD_LIBS)

$(BUILD)/libpop3d.a: $(POP3D_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/virtmail-pop3d: $(POP3D_OBJS) $(BUILD)/libpop3d.a \
    $(BUILD)/libsmtpd.a $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(SMTPD_LIBS)

$(POP3D_UNIT_BINS): $(BUILD)/tests/unit/test_%: $(BUILD)/tests/unit/test_%.o \
    $(BUILD)/libpop3d.a $(BUILD)/libsmtpd.a $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(SMTPD_UNIT_BINS): $(BUILD)/tests/unit/test_%: $(BUILD)/tests/unit/test_%.o \
    $(BUILD)/libsmtpd.a $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(SMTPD_LIBS)

$(UNIT_BINS): $(BUILD)/tests/unit/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The example milter (libmilter), used by the milter end-to-end tests.
all: $(BUILD)/virtmail-testmilter
$(BUILD)/virtmail-testmilter: contrib/milter-example/milter_example.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-cast-qual $(LDFLAGS) -o $@ $< -lmilter -lpthread

# A test probe for "virtmail exec", run inside minimal roots: static
# and never sanitized (a sanitizer's leak check needs /proc, which a
# root lacks).
all: $(BUILD)/tests/ttyprobe
$(BUILD)/tests/ttyprobe: tests/e2e/ttyprobe.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -static -o $@ $<

$(BUILD)/smtp_source: tests/bench/smtp_source.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

$(BUILD)/fsync_loop: tests/bench/fsync_loop.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

bench: all $(BUILD)/smtp_source $(BUILD)/fsync_loop
	$(PYTHON) tests/netns.py tests/bench/bench.py --build $(abspath $(BUILD))
	$(PYTHON) tests/netns.py tests/bench/bench_pop3.py --build $(abspath $(BUILD))

# Postfix and Dovecot for make bench to measure beside virtmail on this
# machine; their system services are left stopped.  Not part of deps.
.PHONY: bench-peers-deps
bench-peers-deps:
	@sh tests/bench/peers-deps.sh

# The demo: what is missing first (make deps), then the build.
run:
	@sh tests/deps.sh
	@$(MAKE) --no-print-directory all
	BUILD=$(abspath $(BUILD)) $(PYTHON) contrib/demo/demo.py

# libFuzzer targets over the protocol parsers (clang from Debian).
# Each target links its own source with the common and smtpd objects,
# built again with the fuzzer's instrumentation under build-fuzz/.
FUZZ_CC		?= clang
FUZZ_RUNS	?= 100000
FUZZ_CFLAGS	 = -std=c11 -D_GNU_SOURCE $(FEATURES) -g -O1 -Icommon -Ismtpd \
		   -Ipop3d \
		   -fsanitize=address,undefined -MMD -MP
FUZZ_TARGETS = \
	pop3_cmd \
	smtp_session

FUZZ_BINS = $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)

# The pop3d parsers, without the parts that need root or libcrypt.
POP3D_FUZZ_SRCS = \
	pop3d/mailbox.c \
	pop3d/pop3_cmd.c \
	pop3d/pop3_io.c \
	pop3d/pop3_ipc.c

build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BINS): build-fuzz/fuzz_%: build-fuzz/contrib/fuzz/fuzz_%.o \
    $(COMMON_SRCS:%.c=build-fuzz/%.o) $(SMTPD_LIB_SRCS:%.c=build-fuzz/%.o) \
    $(POP3D_FUZZ_SRCS:%.c=build-fuzz/%.o)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS) $(SMTPD_LIBS)

# Run each target for FUZZ_RUNS inputs on a scratch copy of its seeds
# (libFuzzer writes new inputs into its first corpus directory).
fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    rm -rf build-fuzz/corpus/$$t; mkdir -p build-fuzz/corpus/$$t; \
	    cp contrib/fuzz/corpus/$$t/* build-fuzz/corpus/$$t/ 2>/dev/null || :; \
	    echo "fuzz: $$t, $(FUZZ_RUNS) runs"; \
	    if ! build-fuzz/fuzz_$$t -runs=$(FUZZ_RUNS) -max_len=8192 \
	        build-fuzz/corpus/$$t >build-fuzz/$$t.log 2>&1; then \
	        cat build-fuzz/$$t.log; exit 1; fi; \
	    tail -1 build-fuzz/$$t.log; \
	done

deps:
	@sh tests/deps.sh

test: all
	$(PYTHON) tests/run.py --build $(BUILD)

unit: all
	$(PYTHON) tests/run.py --build $(BUILD) --unit-only

e2e: all
	$(PYTHON) tests/run.py --build $(BUILD) --e2e-only

check-asan:
	$(MAKE) BUILD=build-asan SAN=1 test

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/sbin/
	for f in docs/*.8; do install -m 644 $$f $(DESTDIR)$(PREFIX)/share/man/man8/; done
	for f in docs/*.5; do [ -e "$$f" ] || continue; \
	    install -m 644 $$f $(DESTDIR)$(PREFIX)/share/man/man5/; done
	for l in virtadduser virtexec virtfs virtmailq virtnewaliases \
	    virtpasswd; do ln -sf virtmail $(DESTDIR)$(PREFIX)/sbin/$$l; done
	install -d $(DESTDIR)$(SYSCONFDIR)/virtmail
	for f in virtual.conf virtmail.conf; do \
	    [ -e $(DESTDIR)$(SYSCONFDIR)/virtmail/$$f ] || \
	    install -m 644 conf/$$f $(DESTDIR)$(SYSCONFDIR)/virtmail/$$f; done
	install -d $(DESTDIR)$(PREFIX)/share/doc/virtmail/examples
	install -m 644 conf/domain-virtmail.conf contrib/inetd.conf \
	    contrib/systemd/*.service contrib/systemd/*.socket \
	    $(DESTDIR)$(PREFIX)/share/doc/virtmail/examples/

clean:
	rm -rf build build-asan build-fuzz

-include $(COMMON_OBJS:.o=.d) $(VIRTUALD_OBJS:.o=.d) $(SMTPD_LIB_OBJS:.o=.d) \
	$(SMTPD_OBJS:.o=.d) $(UNIT_BINS:=.d) $(SMTPD_UNIT_BINS:=.d) \
	$(SENDMAIL_OBJS:.o=.d) $(POSTDROP_OBJS:.o=.d) \
	$(ADMIN_OBJS:.o=.d)
-include $(POP3D_LIB_OBJS:.o=.d) $(POP3D_OBJS:.o=.d) $(POP3D_UNIT_BINS:=.d)
-include $(shell find build-fuzz -name "*.d" 2>/dev/null)
