/* mailvault-pdftext: the text of PDF attachments, for mv-extract
 * (archiver/mv-extract.c).
 *
 *   mailvault-pdftext MAX_PAGES MEMORY_BYTES CPU_SECONDS   (fd 0: a socket)
 *
 * A program of its own, so that poppler (and the thirty libraries it
 * brings: cairo, fontconfig, NSS ...) is never loaded by the mailvault
 * command itself, and so that a hostile PDF runs in a process whose
 * address space and CPU time are limited, which the parent kills at its
 * deadline, and which inherited no lock of the parent's other threads (a
 * fork without exec of a threaded process could deadlock in GLib's type
 * system).  It lives for many documents (starting it and loading poppler
 * cost more than reading a small PDF): each parse thread of mailvault keeps
 * one, and starts another when it died or was killed; after 200 documents
 * the parent closes the socket and starts a fresh one (what poppler's
 * allocations leave behind does not accumulate).
 *
 * The protocol, on the AF_UNIX stream socket that is its standard input:
 *   request:  8 bytes, the most text bytes wanted (native order), with one
 *             file descriptor (SCM_RIGHTS): a memfd holding the PDF;
 *   response: 4 bytes status (0 read, 10 damaged or not a PDF, 11 more
 *             than MAX_PAGES pages: the first were read, 12 encrypted),
 *             4 bytes zero, 8 bytes text length, then the text (UTF-8, a
 *             newline after each page), at most the bytes asked for.
 * End of file on the socket: it exits 0.  Before each document its CPU
 * limit is set to CPU_SECONDS more than it has used (SIGXCPU ends it past
 * that); its address space may grow by MEMORY_BYTES over what it mapped at
 * start.  It ends with _exit: a leak checker of a sanitizer build has
 * nothing to say about a process that only answers. */
#include <errno.h>
#include <fcntl.h>
#include <poppler.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum { ST_READ = 0, ST_DAMAGED = 10, ST_PAGES = 11, ST_ENCRYPTED = 12 };
#define EXIT_USAGE 2
#define INPUT_MAX ((guint64)1 << 30)

static gboolean number(const char *s, guint64 *v)
{
	char *end = NULL;
	errno = 0;
	*v = g_ascii_strtoull(s, &end, 10);
	return s[0] != '\0' && errno == 0 && end != NULL && *end == '\0';
}

/* The address space mapped now (the libraries; under a sanitizer its
 * shadow too): MEMORY_BYTES is what the documents may add to it. */
static guint64 address_space_now(void)
{
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[128];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return g_ascii_strtoull(buf, NULL, 10) * (guint64)sysconf(_SC_PAGESIZE);
}

static void send_all(const void *p, gsize len)
{
	const char *s = p;
	while (len > 0) {
		ssize_t n = send(STDIN_FILENO, s, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0); /* the parent is gone */
		s += n;
		len -= (gsize)n;
	}
}

/* One request: FALSE at end of file.  *fd_r: the PDF's memfd, or -1. */
static gboolean receive(guint64 *max_r, int *fd_r)
{
	*fd_r = -1;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = max_r, .iov_len = sizeof *max_r};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
	                   .msg_controllen = sizeof control.buf};
	ssize_t n;
	do
		n = recvmsg(STDIN_FILENO, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return FALSE;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd_r, CMSG_DATA(c), sizeof(int));
	/* the 8 bytes come in one segment from a local peer; anything else is
	 * not our parent speaking */
	return n == (ssize_t)sizeof *max_r;
}

static GBytes *read_pdf(int fd)
{
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size < 0 || (guint64)sb.st_size > INPUT_MAX)
		return NULL;
	gsize len = (gsize)sb.st_size;
	guint8 *data = g_malloc(len > 0 ? len : 1);
	for (gsize off = 0; off < len;) {
		ssize_t n = pread(fd, data + off, len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_free(data);
			return NULL;
		}
		off += (gsize)n;
	}
	return g_bytes_new_take(data, len);
}

static guint32 text_of(GBytes *pdf, guint64 max_pages, guint64 max_bytes, GString *out)
{
	GError *err = NULL;
	PopplerDocument *doc = poppler_document_new_from_bytes(pdf, NULL, &err);
	if (doc == NULL) {
		guint32 st = err != NULL && g_error_matches(err, POPPLER_ERROR, POPPLER_ERROR_ENCRYPTED)
		                 ? ST_ENCRYPTED
		                 : ST_DAMAGED;
		g_clear_error(&err);
		return st;
	}
	int pages = poppler_document_get_n_pages(doc);
	for (int i = 0; i < pages && (guint64)i < max_pages && out->len < max_bytes; i++) {
		PopplerPage *page = poppler_document_get_page(doc, i);
		if (page == NULL)
			continue;
		char *t = poppler_page_get_text(page);
		if (t != NULL) {
			g_string_append(out, t);
			g_string_append_c(out, '\n');
		}
		g_free(t);
		g_object_unref(page);
	}
	g_object_unref(doc);
	if (out->len > max_bytes)
		g_string_truncate(out, (gsize)max_bytes);
	return pages >= 0 && (guint64)pages > max_pages && out->len < max_bytes ? ST_PAGES : ST_READ;
}

int main(int argc, char **argv)
{
	guint64 max_pages, memory, cpu;
	if (argc != 4 || !number(argv[1], &max_pages) || !number(argv[2], &memory) ||
	    !number(argv[3], &cpu) || cpu == 0) {
		fputs("usage: mailvault-pdftext MAX_PAGES MEMORY_BYTES CPU_SECONDS (fd 0: a socket)\n",
		      stderr);
		_exit(EXIT_USAGE);
	}
	/* Limits first: nothing of the input has been read yet. */
	rlim_t limit = (rlim_t)(address_space_now() + memory);
	struct rlimit as = {.rlim_cur = limit, .rlim_max = limit};
	setrlimit(RLIMIT_AS, &as);
	struct rlimit nocore = {0, 0};
	setrlimit(RLIMIT_CORE, &nocore);
	for (;;) {
		guint64 max_bytes = 0;
		int fd = -1;
		if (!receive(&max_bytes, &fd)) {
			if (fd >= 0)
				close(fd);
			break;
		}
		/* CPU_SECONDS for this document, over what was used so far */
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		rlim_t used = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1);
		struct rlimit cpulim = {.rlim_cur = used + (rlim_t)cpu, .rlim_max = RLIM_INFINITY};
		if (setrlimit(RLIMIT_CPU, &cpulim) != 0) {
			cpulim.rlim_max = cpulim.rlim_cur + 1;
			setrlimit(RLIMIT_CPU, &cpulim);
		}
		GBytes *pdf = read_pdf(fd);
		if (fd >= 0)
			close(fd);
		GString *text = g_string_new(NULL);
		guint32 status = pdf != NULL ? text_of(pdf, max_pages, max_bytes, text) : ST_DAMAGED;
		if (pdf != NULL)
			g_bytes_unref(pdf);
		guint32 head[4] = {status, 0, 0, 0};
		guint64 len = text->len;
		memcpy(&head[2], &len, sizeof len);
		send_all(head, sizeof head);
		send_all(text->str, text->len);
		g_string_free(text, TRUE);
	}
	_exit(0);
}
