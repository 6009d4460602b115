/* make-msg: write an Outlook MSG file ([MS-OXMSG]: an OLE compound file of
 * MAPI property streams) with libgsf, for tests: files built from parts
 * the test knows, to check what the importer makes of them against an
 * independent reader (msgconvert).
 *
 *   make-msg OUT.msg [--subject S] [--from NAME ADDR] [--to NAME ADDR]...
 *            [--cc NAME ADDR]... [--body TEXT] [--time UNIX]
 *            [--attach FILE NAME MIMETYPE]... [--embed SUBJECT BODY FILE NAME]
 *
 * --embed adds an attached message (attach method 5) with that subject and
 * body and one attachment of its own (FILE, named NAME). */
#include <gsf/gsf-outfile-msole.h>
#include <gsf/gsf-outfile.h>
#include <gsf/gsf-output-stdio.h>
#include <gsf/gsf-utils.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_stream(GsfOutfile *dir, const char *name, const void *data, gsize len)
{
	GsfOutput *o = gsf_outfile_new_child(dir, name, FALSE);
	if (len > 0)
		gsf_output_write(o, len, data);
	gsf_output_close(o);
	g_object_unref(o);
}

static void put_string(GsfOutfile *dir, guint16 id, const char *utf8)
{
	gsize len = 0;
	char *u16 = g_convert(utf8, -1, "UTF-16LE", "UTF-8", NULL, &len, NULL);
	char *name = g_strdup_printf("__substg1.0_%04X001F", id);
	GByteArray *b = g_byte_array_new();
	g_byte_array_append(b, (guint8 *)u16, (guint)len);
	g_byte_array_append(b, (const guint8 *)"\0\0", 2);
	put_stream(dir, name, b->data, b->len);
	g_byte_array_free(b, TRUE);
	g_free(name);
	g_free(u16);
}

static void put_binary(GsfOutfile *dir, guint16 id, const void *data, gsize len)
{
	char *name = g_strdup_printf("__substg1.0_%04X0102", id);
	put_stream(dir, name, data, len);
	g_free(name);
}

typedef struct {
	GByteArray *b;
} props;

static void props_begin(props *p, gsize header, guint32 n_rcpt, guint32 n_att)
{
	p->b = g_byte_array_new();
	guint8 h[32] = {0};
	if (header >= 24) {
		h[8] = (guint8)n_rcpt;  /* next recipient id */
		h[12] = (guint8)n_att;  /* next attachment id */
		h[16] = (guint8)n_rcpt; /* recipient count */
		h[20] = (guint8)n_att;  /* attachment count */
	}
	g_byte_array_append(p->b, h, (guint)header);
}

static void props_fixed(props *p, guint16 id, guint16 type, guint64 value)
{
	guint8 e[16] = {0};
	guint32 tag = (guint32)id << 16 | type;
	for (int i = 0; i < 4; i++)
		e[i] = (guint8)(tag >> (8 * i));
	e[4] = 0x06; /* readable, writable */
	for (int i = 0; i < 8; i++)
		e[8 + i] = (guint8)(value >> (8 * i));
	g_byte_array_append(p->b, e, 16);
}

static void props_end(props *p, GsfOutfile *dir)
{
	put_stream(dir, "__properties_version1.0", p->b->data, p->b->len);
	g_byte_array_free(p->b, TRUE);
}

static GBytes *slurp(const char *path)
{
	char *data = NULL;
	gsize len = 0;
	if (!g_file_get_contents(path, &data, &len, NULL)) {
		fprintf(stderr, "make-msg: cannot read %s\n", path);
		exit(1);
	}
	return g_bytes_new_take(data, len);
}

static guint64 filetime(gint64 unix_time)
{
	return (guint64)unix_time * 10000000u + G_GUINT64_CONSTANT(116444736000000000);
}

static void add_attachment(GsfOutfile *msg, int n, GBytes *data, const char *name, const char *type)
{
	char *sname = g_strdup_printf("__attach_version1.0_#%08X", n);
	GsfOutfile *att = GSF_OUTFILE(gsf_outfile_new_child(msg, sname, TRUE));
	props p;
	props_begin(&p, 8, 0, 0);
	props_fixed(&p, 0x3705, 0x0003, 1);
	props_end(&p, att);
	gsize len = 0;
	const void *d = g_bytes_get_data(data, &len);
	put_binary(att, 0x3701, d, len);
	put_string(att, 0x3707, name);
	put_string(att, 0x3704, name);
	if (type != NULL)
		put_string(att, 0x370E, type);
	gsf_output_close(GSF_OUTPUT(att));
	g_object_unref(att);
	g_free(sname);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: make-msg OUT.msg [options]\n");
		return 64;
	}
	gsf_init();
	GError *err = NULL;
	GsfOutput *sink = gsf_output_stdio_new(argv[1], &err);
	if (sink == NULL) {
		fprintf(stderr, "make-msg: %s\n", err->message);
		return 1;
	}
	GsfOutfile *msg = gsf_outfile_msole_new(sink);
	g_object_unref(sink);
	int n_rcpt = 0, n_att = 0;
	gint64 when = 1700000000;
	props p;
	GPtrArray *fixed_later = g_ptr_array_new();
	(void)fixed_later;
	put_string(msg, 0x001A, "IPM.Note");
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		if (strcmp(o, "--subject") == 0 && i + 1 < argc) {
			put_string(msg, 0x0037, argv[++i]);
		} else if (strcmp(o, "--body") == 0 && i + 1 < argc) {
			put_string(msg, 0x1000, argv[++i]);
		} else if (strcmp(o, "--time") == 0 && i + 1 < argc) {
			when = g_ascii_strtoll(argv[++i], NULL, 10);
		} else if (strcmp(o, "--from") == 0 && i + 2 < argc) {
			put_string(msg, 0x0C1A, argv[i + 1]);
			put_string(msg, 0x0C1E, "SMTP");
			put_string(msg, 0x0C1F, argv[i + 2]);
			put_string(msg, 0x5D01, argv[i + 2]);
			i += 2;
		} else if ((strcmp(o, "--to") == 0 || strcmp(o, "--cc") == 0) && i + 2 < argc) {
			char *sname = g_strdup_printf("__recip_version1.0_#%08X", n_rcpt++);
			GsfOutfile *r = GSF_OUTFILE(gsf_outfile_new_child(msg, sname, TRUE));
			props rp;
			props_begin(&rp, 8, 0, 0);
			props_fixed(&rp, 0x0C15, 0x0003, strcmp(o, "--to") == 0 ? 1 : 2);
			props_end(&rp, r);
			put_string(r, 0x3001, argv[i + 1]);
			put_string(r, 0x3002, "SMTP");
			put_string(r, 0x3003, argv[i + 2]);
			put_string(r, 0x39FE, argv[i + 2]);
			gsf_output_close(GSF_OUTPUT(r));
			g_object_unref(r);
			g_free(sname);
			i += 2;
		} else if (strcmp(o, "--attach") == 0 && i + 3 < argc) {
			GBytes *data = slurp(argv[i + 1]);
			add_attachment(msg, n_att++, data, argv[i + 2], argv[i + 3]);
			g_bytes_unref(data);
			i += 3;
		} else if (strcmp(o, "--embed") == 0 && i + 4 < argc) {
			char *sname = g_strdup_printf("__attach_version1.0_#%08X", n_att++);
			GsfOutfile *att = GSF_OUTFILE(gsf_outfile_new_child(msg, sname, TRUE));
			props ap;
			props_begin(&ap, 8, 0, 0);
			props_fixed(&ap, 0x3705, 0x0003, 5);
			props_end(&ap, att);
			put_string(att, 0x3707, argv[i + 1]);
			GsfOutfile *inner = GSF_OUTFILE(gsf_outfile_new_child(att, "__substg1.0_3701000D", TRUE));
			props ip;
			props_begin(&ip, 24, 0, 1);
			props_fixed(&ip, 0x0039, 0x0040, filetime(when - 3600));
			props_end(&ip, inner);
			put_string(inner, 0x001A, "IPM.Note");
			put_string(inner, 0x0037, argv[i + 1]);
			put_string(inner, 0x1000, argv[i + 2]);
			GBytes *data = slurp(argv[i + 3]);
			add_attachment(inner, 0, data, argv[i + 4], "application/octet-stream");
			g_bytes_unref(data);
			gsf_output_close(GSF_OUTPUT(inner));
			g_object_unref(inner);
			gsf_output_close(GSF_OUTPUT(att));
			g_object_unref(att);
			g_free(sname);
			i += 4;
		} else {
			fprintf(stderr, "make-msg: bad option %s\n", o);
			return 64;
		}
	}
	g_ptr_array_free(fixed_later, TRUE);
	props_begin(&p, 32, (guint32)n_rcpt, (guint32)n_att);
	props_fixed(&p, 0x0039, 0x0040, filetime(when));
	props_fixed(&p, 0x3FDE, 0x0003, 65001);
	props_end(&p, msg);
	gsf_output_close(GSF_OUTPUT(msg));
	g_object_unref(msg);
	return 0;
}
