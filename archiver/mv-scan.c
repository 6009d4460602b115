/* mv-scan: clamd and spamd clients.  See mv-scan.h. */
#include "mv-scan.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-glib/json-glib.h>

#define CHUNK (64 * 1024)
/* rspamd's reply lists every symbol that fired: larger than spamd's. */
#define RSPAMD_REPLY_MAX (256 * 1024)

static guint env_uint(const char *name, guint dflt)
{
	const char *v = g_getenv(name);
	if (v == NULL || *v == '\0')
		return dflt;
	gint64 n = g_ascii_strtoll(v, NULL, 10);
	return n > 0 ? (guint)MIN(n, G_MAXINT32) : dflt;
}

static gsize env_size(const char *name, gsize dflt)
{
	const char *v = g_getenv(name);
	if (v == NULL || *v == '\0')
		return dflt;
	gint64 n = g_ascii_strtoll(v, NULL, 10);
	return n > 0 ? (gsize)n : dflt;
}

static const char *env_str(const char *name)
{
	const char *v = g_getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

void mv_scan_config_from_env(mv_scan_config *cfg)
{
	*cfg = (mv_scan_config){0};
	cfg->clamd = env_str("MAILVAULT_CLAMD");
	cfg->clamd_timeout_ms = env_uint("MAILVAULT_CLAMD_TIMEOUT", 30000);
	cfg->clamd_max_bytes = env_size("MAILVAULT_CLAMD_MAX_BYTES", 25 * 1024 * 1024);
	cfg->spamd = env_str("MAILVAULT_SPAMD");
	cfg->spamd_timeout_ms = env_uint("MAILVAULT_SPAMD_TIMEOUT", 30000);
	cfg->spamd_max_bytes = env_size("MAILVAULT_SPAMD_MAX_BYTES", 4 * 1024 * 1024);
	cfg->rspamd = env_str("MAILVAULT_RSPAMD");
}

gboolean mv_scan_spam_enabled(const mv_scan_config *cfg)
{
	return cfg->spamd != NULL || cfg->rspamd != NULL;
}

/* ---- a bounded socket ---- */

static int remaining_ms(gint64 deadline)
{
	gint64 left = deadline - g_get_monotonic_time();
	if (left <= 0)
		return 0;
	return (int)MIN((left + 999) / 1000, G_MAXINT32);
}

static gboolean wait_for(int fd, short events, gint64 deadline)
{
	for (;;) {
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return FALSE;
		struct pollfd pfd = {.fd = fd, .events = events};
		int n = poll(&pfd, 1, ms);
		if (n > 0)
			return TRUE;
		if (n == 0)
			return FALSE;
		if (errno != EINTR)
			return FALSE;
	}
}

/* A scanner's address, as the settings give it: "unix:/path" or "/path" (a
 * Unix socket), or a numeric "A.B.C.D:PORT" or "[V6]:PORT" (no name is
 * resolved: a scanner is a local service).  One parser for clamd, spamd
 * and rspamd. */
typedef struct {
	char *path; /* a Unix socket, or NULL */
	char *host; /* numeric, without brackets, or NULL */
	char *port;
	gboolean v6;
} scanner_address;

static void scanner_address_clear(scanner_address *a)
{
	g_free(a->path);
	g_free(a->host);
	g_free(a->port);
	*a = (scanner_address){0};
}

static gboolean scanner_address_parse(const char *address, scanner_address *a, char **error_r)
{
	*a = (scanner_address){0};
	const char *path = g_str_has_prefix(address, "unix:") ? address + 5
	                   : address[0] == '/'                 ? address
	                                                       : NULL;
	if (path != NULL) {
		if (path[0] == '\0' || strlen(path) >= sizeof ((struct sockaddr_un *)NULL)->sun_path) {
			mv_fail(error_r, MV_ERR_CONFIG, "bad socket path '%s' (empty or too long)", path);
			return FALSE;
		}
		a->path = g_strdup(path);
		return TRUE;
	}
	const char *colon = strrchr(address, ':');
	if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) > 5 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535) {
		mv_fail(error_r, MV_ERR_CONFIG,
		        "'%s' is neither a socket path nor a numeric HOST:PORT", address);
		return FALSE;
	}
	size_t hl = (size_t)(colon - address);
	gboolean v6 = hl >= 2 && address[0] == '[' && address[hl - 1] == ']';
	char *host = v6 ? g_strndup(address + 1, hl - 2) : g_strndup(address, hl);
	struct in6_addr a6;
	struct in_addr a4;
	if (v6 ? inet_pton(AF_INET6, host, &a6) != 1 : inet_pton(AF_INET, host, &a4) != 1) {
		mv_fail(error_r, MV_ERR_CONFIG, "'%s' is not a numeric HOST:PORT", address);
		g_free(host);
		return FALSE;
	}
	a->host = host;
	a->port = g_strdup(colon + 1);
	a->v6 = v6;
	return TRUE;
}

/* A connected non-blocking socket to address, or -1 with *error_r. */
static int connect_to(const char *address, gint64 deadline, mv_status *st_r, char **error_r)
{
	scanner_address a;
	if (!scanner_address_parse(address, &a, error_r)) {
		*st_r = MV_ERR_CONFIG;
		return -1;
	}
	*st_r = MV_ERR_IO;
	int fd = -1;
	if (a.path != NULL) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		memcpy(sun.sun_path, a.path, strlen(a.path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0 &&
		               errno != EINPROGRESS && errno != EAGAIN)) {
			mv_fail(error_r, MV_ERR_IO, "cannot connect to %s: %s", a.path, g_strerror(errno));
			if (fd >= 0)
				close(fd);
			scanner_address_clear(&a);
			return -1;
		}
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
		                         .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
		struct addrinfo *ai = NULL;
		int rc = getaddrinfo(a.host, a.port, &hints, &ai);
		if (rc != 0) {
			*st_r = MV_ERR_CONFIG;
			mv_fail(error_r, MV_ERR_CONFIG, "'%s' is not a numeric HOST:PORT: %s", address,
			        gai_strerror(rc));
			scanner_address_clear(&a);
			return -1;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)) {
			mv_fail(error_r, MV_ERR_IO, "cannot connect to %s: %s", address, g_strerror(errno));
			if (fd >= 0)
				close(fd);
			freeaddrinfo(ai);
			scanner_address_clear(&a);
			return -1;
		}
		freeaddrinfo(ai);
	}
	scanner_address_clear(&a);
	if (!wait_for(fd, POLLOUT, deadline)) {
		mv_fail(error_r, MV_ERR_IO, "connecting to %s timed out", address);
		close(fd);
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
		mv_fail(error_r, MV_ERR_IO, "cannot connect to %s: %s", address,
		        g_strerror(soerr != 0 ? soerr : errno));
		close(fd);
		return -1;
	}
	*st_r = MV_OK;
	return fd;
}

static gboolean send_all(int fd, const void *buf, gsize len, gint64 deadline)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (gsize)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_for(fd, POLLOUT, deadline))
				return FALSE;
			continue;
		}
		return FALSE;
	}
	return TRUE;
}

/* Read until EOF, a NUL (when stop_at_nul) or max bytes, before deadline.
 * FALSE on timeout or error (what was read stays in out). */
static gboolean recv_reply(int fd, GString *out, gsize max, gboolean stop_at_nul, gint64 deadline)
{
	char buf[1024];
	while (out->len < max) {
		ssize_t n = recv(fd, buf, MIN(sizeof buf, max - out->len), 0);
		if (n == 0)
			return TRUE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!wait_for(fd, POLLIN, deadline))
					return FALSE;
				continue;
			}
			return out->len > 0; /* a reset after the reply */
		}
		g_string_append_len(out, buf, n);
		if (stop_at_nul && memchr(buf, '\0', (gsize)n) != NULL)
			return TRUE;
	}
	return TRUE;
}

/* ---- clamd ---- */

mv_status mv_clamd_ping(const char *address, guint timeout_ms, char **error_r)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	mv_status st;
	int fd = connect_to(address, deadline, &st, error_r);
	if (fd < 0)
		return st;
	GString *reply = g_string_new(NULL);
	st = MV_OK;
	if (!send_all(fd, "zPING", 6, deadline) ||
	    !recv_reply(fd, reply, 64, TRUE, deadline) || strncmp(reply->str, "PONG", 4) != 0)
		st = mv_fail(error_r, MV_ERR_IO, "clamd at %s did not answer PING", address);
	g_string_free(reply, TRUE);
	close(fd);
	return st;
}

mv_clamd_verdict mv_clamd_scan(const mv_scan_config *cfg, const guint8 *data, gsize len,
                               gint64 deadline, char **detail_r)
{
	*detail_r = NULL;
	if (len > cfg->clamd_max_bytes) {
		*detail_r = g_strdup_printf("too large (%zu bytes, limit %zu)", len, cfg->clamd_max_bytes);
		return MV_CLAMD_UNSCANNED;
	}
	char *err = NULL;
	mv_status st;
	int fd = connect_to(cfg->clamd, deadline, &st, &err);
	if (fd < 0) {
		*detail_r = g_strdup_printf("clamd unavailable: %s", err);
		g_free(err);
		return MV_CLAMD_UNSCANNED;
	}
	gboolean sent = send_all(fd, "zINSTREAM", 10, deadline);
	for (gsize at = 0; sent && at < len; at += CHUNK) {
		guint32 n = (guint32)MIN(CHUNK, len - at);
		guint32 be = GUINT32_TO_BE(n);
		sent = send_all(fd, &be, 4, deadline) && send_all(fd, data + at, n, deadline);
	}
	if (sent) {
		guint32 zero = 0;
		sent = send_all(fd, &zero, 4, deadline);
	}
	/* clamd may answer (size limit) and close while we still send. */
	GString *reply = g_string_new(NULL);
	gboolean got = recv_reply(fd, reply, MV_SCAN_REPLY_MAX, TRUE, deadline);
	close(fd);
	mv_clamd_verdict v = MV_CLAMD_UNSCANNED;
	/* The reply, one line: "stream: OK", "stream: NAME FOUND",
	 * "... ERROR". */
	gsize n = strnlen(reply->str, reply->len);
	while (n > 0 && (reply->str[n - 1] == '\n' || reply->str[n - 1] == '\r'))
		n--;
	char *line = g_utf8_make_valid(reply->str, (gssize)n);
	const char *body = g_str_has_prefix(line, "stream: ") ? line + 8 : line;
	if (!got && n == 0) {
		*detail_r = g_strdup(g_get_monotonic_time() >= deadline ? "clamd timed out"
		                                                        : "clamd closed the connection");
	} else if (strcmp(body, "OK") == 0 && sent) {
		v = MV_CLAMD_CLEAN;
	} else if (g_str_has_suffix(body, " FOUND") && strlen(body) > 6) {
		v = MV_CLAMD_INFECTED;
		*detail_r = g_strndup(body, strlen(body) - 6);
	} else if (strstr(body, "size limit") != NULL) {
		*detail_r = g_strdup("too large for clamd (StreamMaxLength)");
	} else {
		*detail_r = g_strdup_printf("clamd: %s", n > 0 ? line : "no answer");
	}
	g_free(line);
	g_string_free(reply, TRUE);
	return v;
}

/* Worst of a and b: infected > unscanned > clean. */
static void merge(const char **status, char **name, mv_clamd_verdict v, const char *detail)
{
	if (v == MV_CLAMD_INFECTED) {
		if (*status != NULL && strcmp(*status, "infected") == 0) {
			char **names = g_strsplit(*name, ";", -1);
			gboolean known = g_strv_contains((const char *const *)names, detail);
			g_strfreev(names);
			if (!known) {
				char *joined = g_strdup_printf("%s;%s", *name, detail);
				g_free(*name);
				*name = joined;
			}
		} else {
			g_free(*name);
			*name = g_strdup(detail);
		}
		*status = "infected";
	} else if (v == MV_CLAMD_UNSCANNED) {
		if (*status == NULL || strcmp(*status, "clean") == 0) {
			g_free(*name);
			*name = g_strdup(detail);
			*status = "unscanned";
		}
	} else if (*status == NULL) {
		*status = "clean";
	}
}

void mv_scan_virus(const mv_scan_config *cfg, mv_message *msg)
{
	if (cfg->clamd == NULL)
		return;
	gint64 deadline = g_get_monotonic_time() + (gint64)cfg->clamd_timeout_ms * 1000;
	const char *status = NULL;
	char *name = NULL;
	gboolean down = FALSE; /* once clamd is down, do not wait on it again */
	for (guint i = 0; i < msg->parts->len; i++) {
		mv_part *p = msg->parts->pdata[i];
		/* attachments only: the parser also keeps other leaves' content
		 * for the extract stage */
		if (p->content == NULL || !p->is_attachment)
			continue;
		char *detail = NULL;
		mv_clamd_verdict v;
		if (down) {
			v = MV_CLAMD_UNSCANNED;
			detail = g_strdup("clamd unavailable");
		} else {
			gsize len = 0;
			const guint8 *d = g_bytes_get_data(p->content, &len);
			v = mv_clamd_scan(cfg, d != NULL ? d : (const guint8 *)"", len, deadline, &detail);
			down = v == MV_CLAMD_UNSCANNED && detail != NULL &&
			       (g_str_has_prefix(detail, "clamd unavailable") ||
			        strcmp(detail, "clamd timed out") == 0);
		}
		p->virus = v == MV_CLAMD_CLEAN ? "clean" : v == MV_CLAMD_INFECTED ? "infected" : "unscanned";
		g_free(p->virus_name);
		p->virus_name = detail != NULL ? g_strdup(detail) : NULL;
		merge(&status, &name, v, detail);
		g_free(detail);
		g_clear_pointer(&p->content, g_bytes_unref);
	}
	/* The whole message too: clamd decodes MIME itself and finds what our
	 * parser does not call an attachment (uuencoded bodies, inline
	 * parts, malformed structure). */
	char *detail = NULL;
	mv_clamd_verdict v;
	if (down) {
		v = MV_CLAMD_UNSCANNED;
		detail = g_strdup("clamd unavailable");
	} else {
		gsize len = 0;
		const guint8 *d = g_bytes_get_data(msg->raw, &len);
		v = mv_clamd_scan(cfg, d != NULL ? d : (const guint8 *)"", len, deadline, &detail);
	}
	merge(&status, &name, v, detail);
	g_free(detail);
	msg->verdicts.virus = status;
	g_free(msg->verdicts.virus_name);
	msg->verdicts.virus_name = name;
}

/* ---- spamd ---- */

static void scan_rspamd(const mv_scan_config *cfg, mv_message *msg);

void mv_scan_spam(const mv_scan_config *cfg, mv_message *msg)
{
	if (cfg->rspamd != NULL) {
		scan_rspamd(cfg, msg);
		return;
	}
	if (cfg->spamd == NULL)
		return;
	mv_message_verdicts *vd = &msg->verdicts;
	g_clear_pointer(&vd->spam_reason, g_free);
	vd->spam = "unscanned";
	gsize len = 0;
	const guint8 *d = g_bytes_get_data(msg->raw, &len);
	if (len > cfg->spamd_max_bytes) {
		vd->spam_reason = g_strdup_printf("too large (%zu bytes, limit %zu)", len,
		                                  cfg->spamd_max_bytes);
		return;
	}
	gint64 deadline = g_get_monotonic_time() + (gint64)cfg->spamd_timeout_ms * 1000;
	char *err = NULL;
	mv_status st;
	int fd = connect_to(cfg->spamd, deadline, &st, &err);
	if (fd < 0) {
		vd->spam_reason = g_strdup_printf("spamd unavailable: %s", err);
		g_free(err);
		return;
	}
	char *head = g_strdup_printf("CHECK SPAMC/1.5\r\nContent-length: %zu\r\nUser: mailvault\r\n\r\n", len);
	gboolean sent = send_all(fd, head, strlen(head), deadline) &&
	                send_all(fd, d != NULL ? d : (const guint8 *)"", len, deadline);
	g_free(head);
	if (sent)
		shutdown(fd, SHUT_WR);
	GString *reply = g_string_new(NULL);
	gboolean got = sent && recv_reply(fd, reply, MV_SCAN_REPLY_MAX, FALSE, deadline);
	close(fd);
	/* "SPAMD/1.1 0 EX_OK\r\n...Spam: True ; 15.0 / 5.0\r\n\r\n" */
	const char *r = reply->str;
	const char *spam = NULL;
	if (got && g_str_has_prefix(r, "SPAMD/") && strstr(r, " 0 EX_OK") != NULL)
		spam = strstr(r, "\nSpam: ");
	/* "True ; 15.0 / 5.0", read without the locale (g_ascii_strtod). */
	double score = 0, threshold = 0;
	gboolean parsed = FALSE, is_spam = FALSE;
	if (spam != NULL) {
		const char *c = spam + 7;
		is_spam = g_ascii_strncasecmp(c, "True", 4) == 0 || g_ascii_strncasecmp(c, "Yes", 3) == 0;
		const char *semi = strchr(c, ';'), *slash = semi != NULL ? strchr(semi, '/') : NULL;
		const char *eol = strchr(c, '\n');
		if (semi != NULL && slash != NULL && (eol == NULL || slash < eol)) {
			char *e1 = NULL, *e2 = NULL;
			score = g_ascii_strtod(semi + 1, &e1);
			threshold = g_ascii_strtod(slash + 1, &e2);
			parsed = e1 != semi + 1 && e2 != slash + 1 && isfinite(score) && isfinite(threshold);
		}
	}
	if (parsed) {
		vd->spam = is_spam ? "yes" : "no";
		vd->spam_score = score;
		vd->spam_threshold = threshold;
	} else {
		gsize n = strcspn(r, "\r\n");
		char *first = g_utf8_make_valid(r, (gssize)MIN(n, 200));
		vd->spam_reason = g_strdup_printf("spamd: %s", !got ? (sent ? "timed out or closed" : "send failed")
		                                               : *first ? first : "no answer");
		g_free(first);
	}
	g_string_free(reply, TRUE);
}

/* ---- rspamd ---- */

typedef struct {
	GString *body;
	gboolean too_long;
} rspamd_reply;

static size_t rspamd_write(char *data, size_t size, size_t n, void *context)
{
	rspamd_reply *r = context;
	if (r->body->len + size * n > RSPAMD_REPLY_MAX) {
		r->too_long = TRUE;
		return 0; /* curl stops: CURLE_WRITE_ERROR */
	}
	g_string_append_len(r->body, data, (gssize)(size * n));
	return size * n;
}

/* rspamd's URL (and Unix socket) for a scanner address (scanner_address_parse).
 * *url_r and *socket_r are g_free'd. */
static gboolean rspamd_endpoint(const char *address, char **url_r, char **socket_r)
{
	*url_r = *socket_r = NULL;
	scanner_address a;
	if (!scanner_address_parse(address, &a, NULL))
		return FALSE;
	if (a.path != NULL) {
		*socket_r = g_steal_pointer(&a.path);
		*url_r = g_strdup("http://localhost/checkv2");
	} else {
		*url_r = g_strdup_printf(a.v6 ? "http://[%s]:%s/checkv2" : "http://%s:%s/checkv2",
		                         a.host, a.port);
	}
	scanner_address_clear(&a);
	return TRUE;
}

static void scan_rspamd(const mv_scan_config *cfg, mv_message *msg)
{
	mv_message_verdicts *vd = &msg->verdicts;
	g_clear_pointer(&vd->spam_reason, g_free);
	vd->spam = "unscanned";
	gsize len = 0;
	const guint8 *d = g_bytes_get_data(msg->raw, &len);
	if (len > cfg->spamd_max_bytes) {
		vd->spam_reason = g_strdup_printf("too large (%zu bytes, limit %zu)", len,
		                                  cfg->spamd_max_bytes);
		return;
	}
	char *url = NULL, *sock = NULL;
	if (!rspamd_endpoint(cfg->rspamd, &url, &sock)) {
		vd->spam_reason = g_strdup_printf("rspamd unavailable: bad address %s (unix:/path or "
		                                  "a numeric address:port)", cfg->rspamd);
		return;
	}
	CURL *curl = curl_easy_init();
	rspamd_reply reply = {g_string_new(NULL), FALSE};
	CURLcode rc = CURLE_FAILED_INIT;
	long http = 0;
	if (curl != NULL) {
		struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: message/rfc822");
		headers = curl_slist_append(headers, "Expect:");
		curl_easy_setopt(curl, CURLOPT_URL, url);
		if (sock != NULL)
			curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, sock);
		curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)cfg->spamd_timeout_ms);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, d != NULL ? (const char *)d : "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, rspamd_write);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
		rc = curl_easy_perform(curl);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http);
		curl_easy_cleanup(curl);
		curl_slist_free_all(headers);
	}
	g_free(url);
	g_free(sock);
	if (rc != CURLE_OK || http != 200) {
		vd->spam_reason = reply.too_long ? g_strdup("rspamd: reply too long")
		                  : rc != CURLE_OK
		                      ? g_strdup_printf("rspamd unavailable: %s", curl_easy_strerror(rc))
		                      : g_strdup_printf("rspamd: HTTP status %ld", http);
		g_string_free(reply.body, TRUE);
		return;
	}
	/* {"score": 15.0, "required_score": 15.0, "action": "reject", ...} */
	JsonParser *parser = json_parser_new();
	gboolean parsed = FALSE;
	if (json_parser_load_from_data(parser, reply.body->str, (gssize)reply.body->len, NULL)) {
		JsonNode *root = json_parser_get_root(parser);
		JsonObject *o = root != NULL && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
		JsonNode *sc = o != NULL ? json_object_get_member(o, "score") : NULL;
		JsonNode *rq = o != NULL ? json_object_get_member(o, "required_score") : NULL;
		JsonNode *ac = o != NULL ? json_object_get_member(o, "action") : NULL;
		if (sc != NULL && rq != NULL && ac != NULL && JSON_NODE_HOLDS_VALUE(sc) &&
		    JSON_NODE_HOLDS_VALUE(rq) && json_node_get_value_type(ac) == G_TYPE_STRING &&
		    (json_node_get_value_type(sc) == G_TYPE_DOUBLE || json_node_get_value_type(sc) == G_TYPE_INT64) &&
		    (json_node_get_value_type(rq) == G_TYPE_DOUBLE || json_node_get_value_type(rq) == G_TYPE_INT64)) {
			double score = json_node_get_double(sc), required = json_node_get_double(rq);
			const char *action = json_node_get_string(ac);
			if (isfinite(score) && isfinite(required)) {
				gboolean spam = score >= required || g_strcmp0(action, "reject") == 0 ||
				                g_strcmp0(action, "add header") == 0 ||
				                g_strcmp0(action, "rewrite subject") == 0 ||
				                g_strcmp0(action, "soft reject") == 0;
				vd->spam = spam ? "yes" : "no";
				vd->spam_score = score;
				vd->spam_threshold = required;
				parsed = TRUE;
			}
		}
	}
	g_object_unref(parser);
	if (!parsed)
		vd->spam_reason = g_strdup("rspamd: the reply is not a verdict");
	g_string_free(reply.body, TRUE);
}

/* ---- storing verdicts ---- */

#define VIRUS_BETTER \
	"(EXCLUDED.virus IS NOT NULL AND (o.virus IS NULL OR o.virus = 'unscanned' " \
	"OR EXCLUDED.virus = 'infected'))"
#define SPAM_BETTER \
	"(EXCLUDED.spam IS NOT NULL AND (o.spam IS NULL OR o.spam = 'unscanned' " \
	"OR EXCLUDED.spam <> 'unscanned'))"
#define PICK(cond, col) "CASE WHEN " cond " THEN EXCLUDED." col " ELSE o." col " END"

#define STORE_SQL \
	"WITH m AS (SELECT id FROM message WHERE sha256 = $1::bytea), " \
	"v AS (INSERT INTO verdict AS o (message_id, virus, virus_name, virus_at, spam, spam_score, " \
	"  spam_threshold, spam_reason, spam_at) " \
	"  SELECT m.id, $2, $3, CASE WHEN $2::text IS NULL THEN NULL ELSE now() END, $4, $5::float8, " \
	"  $6::float8, $7, CASE WHEN $4::text IS NULL THEN NULL ELSE now() END FROM m " \
	"  ON CONFLICT (message_id) DO UPDATE SET " \
	"  virus = " PICK(VIRUS_BETTER, "virus") ", virus_name = " PICK(VIRUS_BETTER, "virus_name") \
	", virus_at = " PICK(VIRUS_BETTER, "virus_at") ", spam = " PICK(SPAM_BETTER, "spam") \
	", spam_score = " PICK(SPAM_BETTER, "spam_score") \
	", spam_threshold = " PICK(SPAM_BETTER, "spam_threshold") \
	", spam_reason = " PICK(SPAM_BETTER, "spam_reason") ", spam_at = " PICK(SPAM_BETTER, "spam_at") \
	"  RETURNING 1) " \
	"INSERT INTO part_verdict AS o (message_id, path, virus, virus_name) " \
	"SELECT m.id, p.path, p.virus, p.name FROM m, unnest($8::text[], $9::text[], $10::text[]) " \
	"  AS p(path, virus, name) " \
	"ON CONFLICT (message_id, path) DO UPDATE SET virus = EXCLUDED.virus, " \
	"  virus_name = EXCLUDED.virus_name " \
	"  WHERE o.virus = 'unscanned' OR EXCLUDED.virus = 'infected'"

mv_status mv_scan_store_send(mv_db *db, mv_message *const *msgs, guint n, char **error_r)
{
	mv_status st = MV_OK;
	for (guint i = 0; i < n && st == MV_OK; i++) {
		const mv_message *msg = msgs[i];
		const mv_message_verdicts *vd = &msg->verdicts;
		if (vd->virus == NULL && vd->spam == NULL)
			continue;
		char hex[MV_SHA256_HEX_LEN + 1];
		mv_sha256_to_hex(msg->sha256, hex);
		char *sha = g_strdup_printf("\\x%s", hex);
		gboolean scored = vd->spam != NULL && strcmp(vd->spam, "unscanned") != 0;
		char score[G_ASCII_DTOSTR_BUF_SIZE], threshold[G_ASCII_DTOSTR_BUF_SIZE];
		g_ascii_dtostr(score, sizeof score, vd->spam_score);
		g_ascii_dtostr(threshold, sizeof threshold, vd->spam_threshold);
		GString *paths = g_string_new("{"), *viruses = g_string_new("{"), *names = g_string_new("{");
		for (guint k = 0; k < msg->parts->len; k++) {
			const mv_part *p = msg->parts->pdata[k];
			if (p->virus == NULL)
				continue;
			mv_db_array_text(paths, p->path);
			mv_db_array_text(viruses, p->virus);
			mv_db_array_text(names, p->virus_name);
		}
		g_string_append_c(paths, '}');
		g_string_append_c(viruses, '}');
		g_string_append_c(names, '}');
		const char *v[] = {sha, vd->virus, vd->virus_name, vd->spam, scored ? score : NULL,
		                   scored ? threshold : NULL, vd->spam_reason, paths->str, viruses->str,
		                   names->str};
		st = mv_db_send(db, STORE_SQL, G_N_ELEMENTS(v), v, error_r);
		g_free(sha);
		g_string_free(paths, TRUE);
		g_string_free(viruses, TRUE);
		g_string_free(names, TRUE);
	}
	return st;
}

void mv_scan_verdicts_from_row(const PGresult *r, int row, int col, mv_message_verdicts *vd)
{
	static const char *const virus[] = {"clean", "infected", "unscanned"};
	static const char *const spam[] = {"yes", "no", "unscanned"};
	for (guint i = 0; i < G_N_ELEMENTS(virus); i++)
		if (!PQgetisnull(r, row, col) && strcmp(PQgetvalue(r, row, col), virus[i]) == 0)
			vd->virus = virus[i];
	for (guint i = 0; i < G_N_ELEMENTS(spam); i++)
		if (!PQgetisnull(r, row, col + 2) && strcmp(PQgetvalue(r, row, col + 2), spam[i]) == 0)
			vd->spam = spam[i];
	g_free(vd->virus_name);
	vd->virus_name = PQgetisnull(r, row, col + 1) ? NULL : g_strdup(PQgetvalue(r, row, col + 1));
	vd->spam_score = PQgetisnull(r, row, col + 3) ? 0 : g_ascii_strtod(PQgetvalue(r, row, col + 3), NULL);
	vd->spam_threshold =
		PQgetisnull(r, row, col + 4) ? 0 : g_ascii_strtod(PQgetvalue(r, row, col + 4), NULL);
	g_free(vd->spam_reason);
	vd->spam_reason = PQgetisnull(r, row, col + 5) ? NULL : g_strdup(PQgetvalue(r, row, col + 5));
}

mv_status mv_scan_load(mv_db *db, gint64 id, mv_message *msg, char **error_r)
{
	char idtext[24];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, id);
	const char *v[] = {idtext};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT " MV_SCAN_VERDICT_COLUMNS " "
	                           "FROM verdict WHERE message_id = $1::bigint",
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK && PQntuples(r) == 1)
		mv_scan_verdicts_from_row(r, 0, 0, &msg->verdicts);
	PQclear(r);
	return st;
}
