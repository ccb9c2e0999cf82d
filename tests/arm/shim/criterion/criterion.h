/*
 * A stand-in for the few Criterion macros the SDK's store tests use, for
 * the ARM builds of tests/arm.sh. Each Test() registers itself; main()
 * runs every test in turn, in this process, between its suite's .init and
 * .fini, and reports "[PASS]"/"[FAIL]" lines and a Criterion-like
 * synthesis; the exit status is the number of failures (at most 255). A
 * failed cr_assert_* ends the test (longjmp to the runner, then .fini), a
 * failed cr_expect_* marks it failed and goes on. No fork: qemu-user 7.2
 * hangs in a forked child here, so a crash ends the whole binary (which
 * then fails), and the tests share one process's state, as with
 * Criterion's --no-fork... which it does not have. The message after the condition is printed on failure,
 * after the condition's text and the line (its arguments are evaluated
 * every time). Test code only: never installed.
 */
#ifndef FS_CRITERION_SHIM_H
#define FS_CRITERION_SHIM_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct criterion_suite_opts {
	void (*init)(void);
	void (*fini)(void);
	double timeout;
};

struct shim_test {
	const char *suite, *name;
	void (*fn)(void);
};

struct shim_suite {
	const char *name;
	const struct criterion_suite_opts *opts;
};

#define SHIM_MAX 512
static struct shim_test shim_tests[SHIM_MAX];
static struct shim_suite shim_suites[64];
static int shim_n, shim_ns;
static int shim_failed_here;
static jmp_buf shim_jmp;
static const struct criterion_suite_opts shim_no_opts;

static inline void
shim_register(const char *suite, const char *name, void (*fn)(void))
{
	if (shim_n < SHIM_MAX)
		shim_tests[shim_n++] = (struct shim_test){suite, name, fn};
}

static inline void
shim_register_suite(const char *name, const struct criterion_suite_opts *opts)
{
	if (shim_ns < 64)
		shim_suites[shim_ns++] = (struct shim_suite){name, opts};
}

/* A suite's options; a Test of a suite never declared has none (as in Criterion). */
static inline const struct criterion_suite_opts *
shim_opts(const char *suite)
{
	for (int i = 0; i < shim_ns; i++)
		if (strcmp(shim_suites[i].name, suite) == 0)
			return shim_suites[i].opts;
	return &shim_no_opts;
}

static inline void
shim_fail(bool fatal, const char *file, int line, const char *what)
{
	fprintf(stderr, "[----] %s:%d: %s failed: %s\n", file, line,
	        fatal ? "Assertion" : "Expectation", what);
	shim_failed_here = 1;
	if (fatal)
		longjmp(shim_jmp, 1);
}

#include <stdarg.h>

/* cr_assert(c) without a message passes "" as the format */
#pragma GCC diagnostic ignored "-Wformat-zero-length"

__attribute__((format(printf, 5, 6))) static inline void
shim_check(int ok, bool fatal, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	if (ok)
		return;
	va_start(ap, fmt);
	if (fmt[0] != '\0') {
		fprintf(stderr, "[----] %s:%d: ", file, line);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

#define SHIM_CHECK(cond, fatal, text, ...)                                       \
	do {                                                                     \
		int shim_ok_ = !!(cond);                                         \
		shim_check(shim_ok_, fatal, __FILE__, __LINE__, "" __VA_ARGS__); \
		if (!shim_ok_)                                                   \
			shim_fail(fatal, __FILE__, __LINE__, text);              \
	} while (0)

#define TestSuite(suite, ...)                                                        \
	static const struct criterion_suite_opts shim_suite_##suite = {__VA_ARGS__}; \
	__attribute__((constructor)) static void shim_regsuite_##suite(void)         \
	{                                                                            \
		shim_register_suite(#suite, &shim_suite_##suite);                    \
	}

#define Test(suite, name, ...)                                                   \
	static void suite##_##name(void);                                        \
	__attribute__((constructor)) static void shim_reg_##suite##_##name(void) \
	{                                                                        \
		shim_register(#suite, #name, suite##_##name);                    \
	}                                                                        \
	static void suite##_##name(void)

#define cr_assert(c, ...) SHIM_CHECK((c), true, #c, __VA_ARGS__)
#define cr_expect(c, ...) SHIM_CHECK((c), false, #c, __VA_ARGS__)
#define cr_assert_not(c, ...) SHIM_CHECK(!(c), true, "!(" #c ")", __VA_ARGS__)
#define cr_expect_not(c, ...) SHIM_CHECK(!(c), false, "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) SHIM_CHECK((a) == (b), true, #a " == " #b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) SHIM_CHECK((a) == (b), false, #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) SHIM_CHECK((a) != (b), true, #a " != " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) SHIM_CHECK((a) != (b), false, #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) SHIM_CHECK((a) < (b), true, #a " < " #b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) SHIM_CHECK((a) < (b), false, #a " < " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) SHIM_CHECK((a) > (b), true, #a " > " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) SHIM_CHECK((a) > (b), false, #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) SHIM_CHECK((a) >= (b), true, #a " >= " #b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) SHIM_CHECK((a) >= (b), false, #a " >= " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) SHIM_CHECK((a) <= (b), true, #a " <= " #b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) SHIM_CHECK((a) <= (b), false, #a " <= " #b, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...) \
	SHIM_CHECK(memcmp((a), (b), (n)) == 0, true, #a " == " #b, __VA_ARGS__)
#define cr_assert_fail(...) shim_fail(true, __FILE__, __LINE__, "cr_assert_fail")
#define cr_assert_null(p, ...) SHIM_CHECK((p) == NULL, true, #p " == NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) SHIM_CHECK((p) == NULL, false, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) SHIM_CHECK((p) != NULL, true, #p " != NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) SHIM_CHECK((p) != NULL, false, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) \
	SHIM_CHECK(strcmp((a), (b)) == 0, true, #a " eq " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) \
	SHIM_CHECK(strcmp((a), (b)) == 0, false, #a " eq " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) \
	SHIM_CHECK(strcmp((a), (b)) != 0, true, #a " neq " #b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) \
	SHIM_CHECK(strcmp((a), (b)) != 0, false, #a " neq " #b, __VA_ARGS__)

/* Runs test t; 1 when it failed. Nothing here changes after setjmp. */
static int
shim_run(const struct shim_test *t)
{
	const struct criterion_suite_opts *volatile o = shim_opts(t->suite);
	shim_failed_here = 0;
	alarm(o->timeout > 0 ? (unsigned)o->timeout : 300); /* SIGALRM ends the binary */
	if (setjmp(shim_jmp) == 0) {
		if (o->init)
			o->init();
		t->fn();
	}
	if (o->fini)
		o->fini();
	alarm(0);
	return shim_failed_here;
}

int
main(int argc, char **argv)
{
	int failed = 0;
	(void)argc;
	(void)argv;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < shim_n; i++) {
		int f = shim_run(&shim_tests[i]);
		failed += f;
		printf("[%s] %s::%s\n", f ? "FAIL" : "PASS", shim_tests[i].suite,
		       shim_tests[i].name);
	}
	printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n", shim_n,
	       shim_n - failed, failed);
	return failed > 255 ? 255 : failed;
}

#endif
