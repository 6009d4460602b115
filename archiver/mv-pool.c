/* mv-pool: a GThreadPool and a count of the items not yet run. */
#include "mv-pool.h"

struct mv_pool {
	GThreadPool *threads;
	mv_pool_fn *fn;
	void *context;
	GMutex lock;
	GCond done;
	guint pending; /* pushed and not yet run */
};

static void pool_run(gpointer item, gpointer user_data)
{
	mv_pool *pool = user_data;
	pool->fn(item, pool->context);
	g_mutex_lock(&pool->lock);
	pool->pending--;
	g_cond_signal(&pool->done);
	g_mutex_unlock(&pool->lock);
}

mv_pool *mv_pool_new(mv_pool_fn *fn, void *context, guint max_threads)
{
	mv_pool *pool = g_new0(mv_pool, 1);
	pool->fn = fn;
	pool->context = context;
	g_mutex_init(&pool->lock);
	g_cond_init(&pool->done);
	guint n = CLAMP(g_get_num_processors(), 1, MAX(max_threads, 1));
	pool->threads = g_thread_pool_new(pool_run, pool, (gint)n, TRUE, NULL);
	if (pool->threads == NULL) {
		g_mutex_clear(&pool->lock);
		g_cond_clear(&pool->done);
		g_free(pool);
		return NULL;
	}
	return pool;
}

void mv_pool_push(mv_pool *pool, void *item)
{
	g_mutex_lock(&pool->lock);
	pool->pending++;
	g_mutex_unlock(&pool->lock);
	g_thread_pool_push(pool->threads, item, NULL);
}

void mv_pool_wait(mv_pool *pool)
{
	g_mutex_lock(&pool->lock);
	while (pool->pending > 0)
		g_cond_wait(&pool->done, &pool->lock);
	g_mutex_unlock(&pool->lock);
}

void mv_pool_free(mv_pool **pool)
{
	if (pool == NULL || *pool == NULL)
		return;
	mv_pool *p = *pool;
	mv_pool_wait(p);
	g_thread_pool_free(p->threads, FALSE, TRUE);
	g_mutex_clear(&p->lock);
	g_cond_clear(&p->done);
	g_free(p);
	*pool = NULL;
}
