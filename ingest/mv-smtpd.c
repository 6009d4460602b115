/* mv-smtpd: listeners, allow list, TLS and log (re)loading, signals, and
 * the ingest pipeline behind each session's submit (mv-smtp-session.c).
 * SECURITY: accepts untrusted connections; see mv-smtpd.h for the bounds. */
#include "mv-smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gio/gio.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv-hash.h"
#include "mv-log.h"
#include "mv-pipeline.h"
#include "mv-smtp-session.h"

#define MAX_LISTENERS 16

/* ---- shared server state ---- */

typedef struct {
	const mv_smtpd_config *cfg;
	GMutex log_lock;           /* the log file, alone: a log line never
	                              waits on the server's lock */
	GThreadPool *session_pool; /* session threads, reused across connections */
	mv_pipeline *pipeline;     /* parse, classify, commit, index */
	GMutex lock;               /* everything below */
	GCond cond;                /* sessions count */
	guint sessions;            /* active session threads */
	SSL_CTX *tls;              /* current TLS context (ref-counted) */
	GPtrArray *allow;          /* GInetAddressMask* */
	FILE *log;
	gint stop;                 /* atomic: stop serving */
	mv_smtp_session_env env;   /* what every session gets of the server */
} server;

static void log_at(server *srv, mv_log_level level, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* One log line: to the --log file when there is one, else to the program's
 * log handler (mv-log.h: standard error, the journal under systemd). */
static void log_at(server *srv, mv_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_mutex_lock(&srv->log_lock);
	if (srv->log != NULL) {
		char *line = mv_log_format_line(level, "smtpd", msg, FALSE);
		fputs(line, srv->log);
		fflush(srv->log);
		g_free(line);
	} else {
		mv_log(level, "smtpd", "%s", msg);
	}
	g_mutex_unlock(&srv->log_lock);
	g_free(msg);
}

#define log_line(srv, ...) log_at(srv, MV_LOG_INFO, __VA_ARGS__)
#define log_warn(srv, ...) log_at(srv, MV_LOG_WARN, __VA_ARGS__)

/* A line from the pipeline or a session. */
static void forward_log(void *context, const char *line)
{
	log_line(context, "%s", line);
}

/* ---- what a session gets of the server (mv_smtp_session_env) ---- */

/* What the session needs of the pipeline's outcome: the SHA-256 of the
 * message the client sent (the report itself when it was unwrapped). */
static void on_done(void *context, const mv_pipeline_outcome *o)
{
	mv_smtp_submit_outcome *c = context;
	if (o->n > 0)
		mv_sha256_to_hex(o->records[o->n - 1].sha256, c->sha_hex);
	c->error = o->status != MV_OK ? g_strdup(o->error) : NULL;
	for (guint i = 0; i < o->n && c->failed_stage == NULL; i++)
		c->failed_stage = o->records[i].failed_stage;
}

/* The session's submit: the pipeline stores the message, one reply waits
 * for its COMMIT. */
static mv_status session_submit(void *context, GBytes *raw, const mv_arrival_info *arrival,
                                mv_smtp_submit_outcome *outcome)
{
	server *srv = context;
	mv_pipeline_submission sub = {.raw = raw, .arrival = arrival,
	                              .unwrap_journal = srv->cfg->journal_reports,
	                              .done = on_done, .done_context = outcome};
	mv_status st = mv_pipeline_submit_wait(srv->pipeline, &sub);
	outcome->status = st;
	return st;
}

static SSL_CTX *session_tls(void *context)
{
	server *srv = context;
	g_mutex_lock(&srv->lock);
	SSL_CTX *ctx = srv->tls;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	g_mutex_unlock(&srv->lock);
	return ctx;
}

/* ---- sessions ---- */

typedef struct {
	server *srv;
	int fd;
	char *addr;
} accepted;

static gboolean client_allowed(server *srv, GInetAddress *addr)
{
	gboolean ok = FALSE;
	g_mutex_lock(&srv->lock);
	for (guint i = 0; i < srv->allow->len && !ok; i++)
		ok = g_inet_address_mask_matches(srv->allow->pdata[i], addr);
	g_mutex_unlock(&srv->lock);
	return ok;
}

static void session_main(gpointer data, gpointer pool_data)
{
	accepted *a = data;
	server *srv = pool_data;
	mv_smtp_session_run(a->fd, a->addr, &srv->env);
	g_free(a->addr);
	g_free(a);
	g_mutex_lock(&srv->lock);
	srv->sessions--;
	g_cond_broadcast(&srv->cond);
	g_mutex_unlock(&srv->lock);
}

/* ---- configuration pieces that SIGHUP reloads ---- */

/* The allow list of the config file's [smtpd] group, for a reload. */
static mv_status read_allow_file(const char *path, GPtrArray **list_r, char **error_r)
{
	*list_r = NULL;
	GKeyFile *kf = g_key_file_new();
	GError *gerr = NULL;
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &gerr)) {
		mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "cannot read %s: %s", path, gerr->message);
		g_error_free(gerr);
		g_key_file_free(kf);
		return st;
	}
	GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
	gsize n = 0;
	char **vals = g_key_file_get_string_list(kf, "smtpd", "allow", &n, NULL);
	for (gsize i = 0; vals != NULL && i < n; i++)
		g_ptr_array_add(list, g_strstrip(g_strdup(vals[i])));
	g_strfreev(vals);
	g_key_file_free(kf);
	*list_r = list;
	return MV_OK;
}

static mv_status load_allow(const mv_smtpd_config *cfg, gboolean reload, GPtrArray **allow_r,
                            char **error_r)
{
	GPtrArray *strings = cfg->allow;
	GPtrArray *from_file = NULL;
	if (reload && cfg->allow_file != NULL) {
		mv_status st = read_allow_file(cfg->allow_file, &from_file, error_r);
		if (st != MV_OK)
			return st;
		strings = from_file;
	}
	GPtrArray *allow = g_ptr_array_new_with_free_func(g_object_unref);
	static const char *const loopback[] = {"127.0.0.0/8", "::1/128", NULL};
	guint n = strings != NULL ? strings->len : 0;
	for (guint i = 0; i < (n > 0 ? n : 2); i++) {
		const char *cidr = n > 0 ? strings->pdata[i] : loopback[i];
		GError *gerr = NULL;
		GInetAddressMask *m = g_inet_address_mask_new_from_string(cidr, &gerr);
		if (m == NULL) {
			mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "bad --allow %s: %s", cidr, gerr->message);
			g_error_free(gerr);
			g_ptr_array_free(allow, TRUE);
			if (from_file != NULL)
				g_ptr_array_free(from_file, TRUE);
			return st;
		}
		g_ptr_array_add(allow, m);
	}
	if (from_file != NULL)
		g_ptr_array_free(from_file, TRUE);
	*allow_r = allow;
	return MV_OK;
}

static mv_status load_tls(const mv_smtpd_config *cfg, SSL_CTX **ctx_r, char **error_r)
{
	*ctx_r = NULL;
	if (cfg->tls_cert == NULL && cfg->tls_key == NULL) {
		if (cfg->require_tls)
			return mv_fail(error_r, MV_ERR_CONFIG, "--require-tls needs --tls-cert and --tls-key");
		return MV_OK;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
		return mv_fail(error_r, MV_ERR_CONFIG, "--tls-cert and --tls-key go together");
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot create a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char buf[256];
		ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
		SSL_CTX_free(ctx);
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot load TLS certificate %s / key %s: %s",
		               cfg->tls_cert, cfg->tls_key, buf);
	}
	*ctx_r = ctx;
	return MV_OK;
}

static mv_status open_log(const mv_smtpd_config *cfg, FILE **log_r, char **error_r)
{
	*log_r = NULL;
	if (cfg->log_path == NULL)
		return MV_OK;
	FILE *f = fopen(cfg->log_path, "a");
	if (f == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot open log %s: %s", cfg->log_path,
		               g_strerror(errno));
	*log_r = f;
	return MV_OK;
}

static void reload_policy(server *srv)
{
	gint64 version = 0;
	char *err = NULL;
	if (mv_pipeline_reload_policy(srv->pipeline, &version, &err) != MV_OK) {
		log_warn(srv, "policy not reloaded, keeping the one in force: %s", err);
		g_free(err);
		return;
	}
	log_line(srv, "retention policy version %" G_GINT64_FORMAT " in force", version);
}

static void reload(server *srv)
{
	reload_policy(srv);
	char *err = NULL;
	GPtrArray *allow = NULL;
	SSL_CTX *tls = NULL;
	FILE *log = NULL;
	if (load_allow(srv->cfg, TRUE, &allow, &err) != MV_OK || load_tls(srv->cfg, &tls, &err) != MV_OK ||
	    open_log(srv->cfg, &log, &err) != MV_OK) {
		log_warn(srv, "reload failed, keeping the old settings: %s", err);
		g_free(err);
		if (allow != NULL)
			g_ptr_array_free(allow, TRUE);
		if (tls != NULL)
			SSL_CTX_free(tls);
		return;
	}
	g_mutex_lock(&srv->lock);
	GPtrArray *old_allow = srv->allow;
	SSL_CTX *old_tls = srv->tls;
	FILE *old_log = srv->log;
	srv->allow = allow;
	srv->tls = tls;
	srv->log = log;
	g_mutex_unlock(&srv->lock);
	g_ptr_array_free(old_allow, TRUE);
	if (old_tls != NULL)
		SSL_CTX_free(old_tls);
	if (old_log != NULL)
		fclose(old_log);
	log_line(srv, "reloaded: log reopened, allow list and TLS files read again");
}

/* ---- listeners ---- */

static mv_status open_listener(const char *spec, int *fd_r, char **error_r)
{
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec || colon[1] == '\0')
		return mv_fail(error_r, MV_ERR_CONFIG, "bad --listen %s (use ADDR:PORT)", spec);
	char *host = g_strndup(spec, (gsize)(colon - spec));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		char *inner = g_strndup(host + 1, strlen(host) - 2);
		g_free(host);
		host = inner;
	}
	char *end = NULL;
	guint64 port = g_ascii_strtoull(colon + 1, &end, 10);
	GInetAddress *ia = g_inet_address_new_from_string(host);
	mv_status st = MV_OK;
	if (ia == NULL || *end != '\0' || port == 0 || port > 65535) {
		st = mv_fail(error_r, MV_ERR_CONFIG, "bad --listen %s (use ADDR:PORT with a numeric address)", spec);
	} else {
		GSocketAddress *sa = g_inet_socket_address_new(ia, (guint16)port);
		struct sockaddr_storage ss;
		g_socket_address_to_native(sa, &ss, sizeof ss, NULL);
		gssize sl = g_socket_address_get_native_size(sa);
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		    bind(fd, (struct sockaddr *)&ss, (socklen_t)sl) != 0 || listen(fd, 256) != 0) {
			st = mv_fail(error_r, MV_ERR_CONFIG, "cannot listen on %s: %s", spec, g_strerror(errno));
			if (fd >= 0)
				close(fd);
		} else {
			*fd_r = fd;
		}
		g_object_unref(sa);
	}
	if (ia != NULL)
		g_object_unref(ia);
	g_free(host);
	return st;
}

void mv_smtpd_config_default(mv_smtpd_config *c)
{
	*c = (mv_smtpd_config){0};
	c->max_size = 50 * 1024 * 1024;
	c->max_connections = 500;
	c->max_recipients = 1000;
	c->max_errors = 20;
	c->idle_timeout = 300;
	c->group_max = 200;
	c->writers = 1;
}

static void accept_one(server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct timeval tv = {.tv_sec = srv->cfg->idle_timeout};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	GSocketAddress *sa = g_socket_address_new_from_native(&ss, sl);
	GInetAddress *ia = sa != NULL && G_IS_INET_SOCKET_ADDRESS(sa)
	                       ? g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa))
	                       : NULL;
	char *addr = ia != NULL ? g_inet_address_to_string(ia) : g_strdup("unknown");
	gboolean allowed = ia != NULL && client_allowed(srv, ia);
	if (sa != NULL)
		g_object_unref(sa);
	if (!allowed) {
		static const char denied[] = "554 5.7.1 Access denied\r\n";
		if (write(fd, denied, sizeof denied - 1) < 0) {
			/* the client is gone; nothing else to do */
		}
		close(fd);
		log_warn(srv, "client=%s refused: not in the allow list", addr);
		g_free(addr);
		return;
	}
	g_mutex_lock(&srv->lock);
	gboolean full = srv->sessions >= srv->cfg->max_connections;
	if (!full)
		srv->sessions++;
	g_mutex_unlock(&srv->lock);
	if (full) {
		static const char busy[] = "421 4.7.0 Too many connections, try again later\r\n";
		if (write(fd, busy, sizeof busy - 1) < 0) {
			/* ditto */
		}
		close(fd);
		g_free(addr);
		return;
	}
	accepted *a = g_new0(accepted, 1);
	a->srv = srv;
	a->fd = fd;
	a->addr = addr;
	GError *gerr = NULL;
	if (!g_thread_pool_push(srv->session_pool, a, &gerr)) {
		static const char busy[] = "421 4.3.0 Cannot start a session, try again later\r\n";
		if (write(fd, busy, sizeof busy - 1) < 0) {
			/* ditto */
		}
		log_warn(srv, "client=%s refused: %s", addr, gerr->message);
		g_error_free(gerr);
		close(fd);
		g_free(addr);
		g_free(a);
		g_mutex_lock(&srv->lock);
		srv->sessions--;
		g_cond_broadcast(&srv->cond);
		g_mutex_unlock(&srv->lock);
	}
}

mv_status mv_smtpd_run(const mv_smtpd_config *cfg, char **error_r)
{
	if (cfg->listen == NULL || cfg->listen->len == 0)
		return mv_fail(error_r, MV_ERR_USAGE, "no --listen address");
	if (cfg->listen->len > MAX_LISTENERS)
		return mv_fail(error_r, MV_ERR_USAGE, "at most %d --listen addresses", MAX_LISTENERS);
	server srv = {.cfg = cfg};
	srv.env = (mv_smtp_session_env){
		.hostname = cfg->hostname,
		.lmtp = cfg->lmtp,
		.require_tls = cfg->require_tls,
		.max_size = cfg->max_size,
		.max_recipients = cfg->max_recipients,
		.max_errors = cfg->max_errors,
		.idle_timeout = cfg->idle_timeout,
		.spool_dir = cfg->spool_dir,
		.context = &srv,
		.submit = session_submit,
		.log = forward_log,
		.tls_context = session_tls,
		.stop = &srv.stop,
	};
	g_mutex_init(&srv.lock);
	g_mutex_init(&srv.log_lock);
	g_cond_init(&srv.cond);
	mv_status st = load_allow(cfg, FALSE, &srv.allow, error_r);
	if (st == MV_OK)
		st = load_tls(cfg, &srv.tls, error_r);
	if (st == MV_OK)
		st = open_log(cfg, &srv.log, error_r);
	int lfds[MAX_LISTENERS];
	guint nl = 0;
	for (guint i = 0; st == MV_OK && i < cfg->listen->len; i++) {
		st = open_listener(cfg->listen->pdata[i], &lfds[nl], error_r);
		if (st == MV_OK)
			nl++;
	}
	sigset_t mask, old_mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	int sfd = -1;
	if (st == MV_OK) {
		/* Block the signals in every thread (so before the pipeline
		 * starts its threads); the main loop reads them. */
		pthread_sigmask(SIG_BLOCK, &mask, &old_mask);
		signal(SIGPIPE, SIG_IGN);
		sfd = signalfd(-1, &mask, SFD_CLOEXEC);
		if (sfd < 0)
			st = mv_fail(error_r, MV_ERR_INTERNAL, "signalfd: %s", g_strerror(errno));
	}
	/* The pipeline checks the database before anything is accepted. */
	if (st == MV_OK) {
		mv_pipeline_options po;
		mv_pipeline_options_default(&po);
		po.source = cfg->lmtp ? "lmtp" : "smtp";
		po.db = &cfg->db;
		po.writers = MAX(cfg->writers, 1);
		po.group_max = cfg->group_max;
		po.in_flight_max = MAX(cfg->max_connections, 1);
		po.ordered = FALSE; /* a large message does not hold up the others */
		po.index = MV_PIPELINE_INDEX_IN_PAUSES;
		po.log = forward_log;
		po.log_context = &srv;
		st = mv_pipeline_new(&po, &srv.pipeline, error_r);
		if (st != MV_OK) {
			close(sfd);
			pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
		}
	}
	if (st != MV_OK) {
		for (guint i = 0; i < nl; i++)
			close(lfds[i]);
		if (srv.allow != NULL)
			g_ptr_array_free(srv.allow, TRUE);
		if (srv.tls != NULL)
			SSL_CTX_free(srv.tls);
		if (srv.log != NULL)
			fclose(srv.log);
		mv_pipeline_free(&srv.pipeline);
		return st;
	}
	/* Threads are kept for reuse instead of made per connection: a
	 * journaling server opens a connection per message. */
	srv.session_pool = g_thread_pool_new(session_main, &srv, (gint)MAX(cfg->max_connections, 1),
	                                     FALSE, NULL);
	g_thread_pool_set_max_unused_threads(MIN((gint)cfg->max_connections, 256));
	for (guint i = 0; i < cfg->listen->len; i++)
		log_line(&srv, "listening on %s (%s) max-connections=%u writers=%u", (const char *)cfg->listen->pdata[i],
		         cfg->lmtp ? "LMTP" : "SMTP", cfg->max_connections, MAX(cfg->writers, 1));
	struct pollfd pfds[MAX_LISTENERS + 1];
	while (!g_atomic_int_get(&srv.stop)) {
		for (guint i = 0; i < nl; i++)
			pfds[i] = (struct pollfd){.fd = lfds[i], .events = POLLIN};
		pfds[nl] = (struct pollfd){.fd = sfd, .events = POLLIN};
		if (poll(pfds, nl + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfds[nl].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGHUP)
					reload(&srv);
				else
					g_atomic_int_set(&srv.stop, 1);
			}
		}
		for (guint i = 0; i < nl && !g_atomic_int_get(&srv.stop); i++)
			if (pfds[i].revents & POLLIN)
				accept_one(&srv, lfds[i]);
	}
	/* SIGTERM: stop accepting, let transactions in flight finish. */
	for (guint i = 0; i < nl; i++)
		close(lfds[i]);
	log_line(&srv, "stopping: waiting for sessions to finish");
	g_mutex_lock(&srv.lock);
	while (srv.sessions > 0)
		g_cond_wait(&srv.cond, &srv.lock);
	g_mutex_unlock(&srv.lock);
	mv_pipeline_free(&srv.pipeline);
	log_line(&srv, "stopped");
	close(sfd);
	g_ptr_array_free(srv.allow, TRUE);
	if (srv.tls != NULL)
		SSL_CTX_free(srv.tls);
	if (srv.log != NULL)
		fclose(srv.log);
	g_thread_pool_free(srv.session_pool, FALSE, TRUE);
	g_mutex_clear(&srv.lock);
	g_mutex_clear(&srv.log_lock);
	g_cond_clear(&srv.cond);
	return MV_OK;
}
