/* mailvault-pdftext: the text of one PDF, for mv-extract (archiver/mv-extract.c).
 *
 *   mailvault-pdftext MAX_PAGES MAX_BYTES MEMORY_BYTES CPU_SECONDS < file.pdf > text
 *
 * A program of its own, started for each PDF attachment, so that poppler
 * (and the thirty libraries it brings: cairo, fontconfig, NSS ...) is never
 * loaded by the mailvault command itself, and so that a hostile PDF runs in
 * a fresh process: its address space and CPU time are limited here before
 * anything is read, the parent kills it at its deadline, and no lock of the
 * parent's other threads is inherited (a fork without exec of a threaded
 * process could deadlock in GLib's type system).
 *
 * Reads the PDF from standard input (at most 1 GiB), writes the pages'
 * text (UTF-8, a newline after each page) to standard output until
 * MAX_BYTES (its address space may grow by MEMORY_BYTES, its CPU time is
 * CPU_SECONDS), and exits 0 (read), 10 (damaged or not a PDF), 11 (more than
 * MAX_PAGES pages: the first were read), 12 (encrypted), 2 (usage).  It
 * ends with _exit: nothing it allocated needs freeing, and a leak checker
 * of a sanitizer build has nothing to say about a process that only
 * answers. */
#include <errno.h>
#include <fcntl.h>
#include <poppler.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { EXIT_READ = 0, EXIT_USAGE = 2, EXIT_DAMAGED = 10, EXIT_PAGES = 11, EXIT_ENCRYPTED = 12 };
#define INPUT_MAX ((gsize)1 << 30)

static gboolean number(const char *s, guint64 *v)
{
	char *end = NULL;
	errno = 0;
	*v = g_ascii_strtoull(s, &end, 10);
	return s[0] != '\0' && errno == 0 && end != NULL && *end == '\0';
}

/* The address space mapped now (the libraries; under a sanitizer its
 * shadow too): MEMORY_BYTES is what the PDF may add to it. */
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

static void write_all(const char *s, gsize len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(EXIT_READ); /* the parent stopped reading: it has enough */
		s += n;
		len -= (gsize)n;
	}
}

int main(int argc, char **argv)
{
	guint64 max_pages, max_bytes, memory, cpu;
	if (argc != 5 || !number(argv[1], &max_pages) || !number(argv[2], &max_bytes) ||
	    !number(argv[3], &memory) || !number(argv[4], &cpu) || cpu == 0) {
		fputs("usage: mailvault-pdftext MAX_PAGES MAX_BYTES MEMORY_BYTES CPU_SECONDS < PDF\n", stderr);
		_exit(EXIT_USAGE);
	}
	/* Limits first: nothing of the input has been read yet. */
	rlim_t limit = (rlim_t)(address_space_now() + memory);
	struct rlimit as = {.rlim_cur = limit, .rlim_max = limit};
	setrlimit(RLIMIT_AS, &as);
	struct rlimit cpulim = {.rlim_cur = (rlim_t)cpu, .rlim_max = (rlim_t)cpu + 1};
	setrlimit(RLIMIT_CPU, &cpulim);
	struct rlimit nocore = {0, 0};
	setrlimit(RLIMIT_CORE, &nocore);
	signal(SIGPIPE, SIG_DFL);

	GByteArray *in = g_byte_array_new();
	guint8 buf[64 * 1024];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(EXIT_DAMAGED);
		if (n == 0)
			break;
		if (in->len + (gsize)n > INPUT_MAX)
			_exit(EXIT_DAMAGED);
		g_byte_array_append(in, buf, (guint)n);
	}
	GBytes *bytes = g_byte_array_free_to_bytes(in);
	GError *err = NULL;
	PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &err);
	if (doc == NULL)
		_exit(err != NULL && g_error_matches(err, POPPLER_ERROR, POPPLER_ERROR_ENCRYPTED)
		          ? EXIT_ENCRYPTED
		          : EXIT_DAMAGED);
	int pages = poppler_document_get_n_pages(doc);
	guint64 written = 0;
	for (int i = 0; i < pages && (guint64)i < max_pages && written < max_bytes; i++) {
		PopplerPage *page = poppler_document_get_page(doc, i);
		if (page == NULL)
			continue;
		char *t = poppler_page_get_text(page);
		if (t != NULL) {
			gsize n = strlen(t);
			write_all(t, n);
			write_all("\n", 1);
			written += n + 1;
		}
		g_free(t);
		g_object_unref(page);
	}
	_exit(pages >= 0 && (guint64)pages > max_pages && written < max_bytes ? EXIT_PAGES : EXIT_READ);
}
