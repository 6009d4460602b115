/* mv-pool: every item pushed has run when mv_pool_wait returns, once; the
 * pool can be waited on again after more pushes; free waits for what is
 * still pushed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mv-pool.h"

typedef struct {
	gint runs;
	guint64 value, square;
} item;

static void square(void *data, void *context)
{
	item *it = data;
	gint *total = context;
	/* Some work, so that threads overlap. */
	volatile guint64 spin = 0;
	for (guint64 i = 0; i < it->value * 100; i++)
		spin += i & 1;
	it->square = it->value * it->value;
	g_atomic_int_inc(&it->runs);
	g_atomic_int_inc(total);
}

static void test_every_item_once(void **state)
{
	(void)state;
	gint total = 0;
	mv_pool *pool = mv_pool_new(square, &total, 8);
	assert_non_null(pool);
	enum { N = 2000 };
	item *items = g_new0(item, N);
	for (guint round = 0; round < 3; round++) {
		for (guint i = 0; i < N; i++) {
			items[i].value = i + round;
			mv_pool_push(pool, &items[i]);
		}
		mv_pool_wait(pool);
		for (guint i = 0; i < N; i++) {
			assert_int_equal(items[i].runs, (gint)round + 1);
			assert_true(items[i].square == (guint64)(i + round) * (i + round));
		}
		assert_int_equal(g_atomic_int_get(&total), (gint)(N * (round + 1)));
	}
	mv_pool_wait(pool); /* nothing pushed: returns at once */
	mv_pool_free(&pool);
	assert_null(pool);
	mv_pool_free(&pool); /* NULL: nothing */
	g_free(items);
}

static void test_free_waits(void **state)
{
	(void)state;
	gint total = 0;
	mv_pool *pool = mv_pool_new(square, &total, 1);
	assert_non_null(pool);
	item items[64] = {{0}};
	for (guint i = 0; i < G_N_ELEMENTS(items); i++) {
		items[i].value = 500;
		mv_pool_push(pool, &items[i]);
	}
	mv_pool_free(&pool);
	assert_int_equal(total, (gint)G_N_ELEMENTS(items));
	for (guint i = 0; i < G_N_ELEMENTS(items); i++)
		assert_int_equal(items[i].runs, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_item_once),
		cmocka_unit_test(test_free_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
