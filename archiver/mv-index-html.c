/* mv-index-html: the offline index of a case bundle.  Every value written
 * comes from mail (untrusted) and is HTML-escaped; links are relative
 * paths, percent-encoded. */
#include "mv-index-html.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mv-edrm.h"

struct mv_index_html {
	FILE *f;
	char *path;
	guint64 rows;
};

static const char head_css[] =
	"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	"style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<style>\n"
	"body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}\n"
	"h1{font-size:1.4em;margin:.2em 0}p.sub{color:#555;margin:.2em 0 1em}\n"
	"#bar{margin:.5em 0;display:flex;gap:1em;align-items:center}\n"
	"#filter{font:inherit;padding:.3em .5em;width:24em}\n"
	"table{border-collapse:collapse;width:100%}\n"
	"th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\n"
	"th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}\n"
	"details.x summary{color:#555;font-size:.9em}details.x pre{white-space:pre-wrap;max-width:60em}\n"
	"th[aria-sort=ascending]::after{content:\" \\25B2\"}\n"
	"th[aria-sort=descending]::after{content:\" \\25BC\"}\n"
	"td.n{text-align:right}td.d,td.r{white-space:nowrap}\n"
	"td.files{max-width:22em;overflow-wrap:anywhere}td.files a{margin-right:.5em}\n"
	"tr:hover td{background:#fafaf0}\n"
	"</style>\n";

static const char script[] =
	"<script>\n"
	"(function(){\n"
	"'use strict';\n"
	"var body=document.body;\n"
	"window.onerror=function(m){body.setAttribute('data-status','error');"
	"body.setAttribute('data-error',String(m));};\n"
	"var t=document.getElementById('docs'),tb=t.tBodies[0],hs=t.tHead.rows[0].cells;\n"
	"var rows=Array.prototype.slice.call(tb.rows),f=document.getElementById('filter');\n"
	"var cnt=document.getElementById('count'),col=-1,asc=true;\n"
	"function key(r,c){var d=r.cells[c],v=d.getAttribute('data-v');"
	"return v!==null?v:d.textContent.toLowerCase();}\n"
	"function sortBy(c,a){col=c;asc=a;var n=hs[c].getAttribute('data-type')==='num';\n"
	" rows.sort(function(x,y){var p=key(x,c),q=key(y,c),"
	"d=n?(parseFloat(p)-parseFloat(q)):(p<q?-1:(p>q?1:0));return a?d:-d;});\n"
	" var fr=document.createDocumentFragment();rows.forEach(function(r){fr.appendChild(r);});"
	"tb.appendChild(fr);\n"
	" for(var i=0;i<hs.length;i++){if(i===c)hs[i].setAttribute('aria-sort',a?'ascending':'descending');"
	"else hs[i].removeAttribute('aria-sort');}}\n"
	"function apply(){var q=f.value.toLowerCase(),shown=0;\n"
	" rows.forEach(function(r){var ok=q===''||r.textContent.toLowerCase().indexOf(q)>=0;"
	"r.hidden=!ok;if(ok)shown++;});\n"
	" cnt.textContent=shown+' of '+rows.length+' messages';"
	"body.setAttribute('data-rows',rows.length);body.setAttribute('data-shown',shown);}\n"
	"function save(){var h='sort='+col+':'+(asc?'asc':'desc');"
	"if(f.value!=='')h+='&filter='+encodeURIComponent(f.value);\n"
	" try{history.replaceState(null,'','#'+h);}catch(e){}}\n"
	"function load(){var h=location.hash.replace(/^#/,'').split('&');\n"
	" h.forEach(function(kv){var i=kv.indexOf('=');if(i<0)return;"
	"var k=kv.slice(0,i),v=decodeURIComponent(kv.slice(i+1));\n"
	"  if(k==='filter')f.value=v;\n"
	"  if(k==='sort'){var p=v.split(':'),c=parseInt(p[0],10);"
	"if(c>=0&&c<hs.length)sortBy(c,p[1]!=='desc');}});}\n"
	"for(var i=0;i<hs.length;i++){(function(c){hs[c].addEventListener('click',function(){"
	"sortBy(c,col===c?!asc:true);save();});})(i);}\n"
	"f.addEventListener('input',function(){apply();save();});\n"
	"load();apply();body.setAttribute('data-status','ready');\n"
	"})();\n"
	"</script>\n";

static gboolean put(mv_index_html *w, const char *s)
{
	return fputs(s, w->f) >= 0;
}

/* Escaped text (from mail: cleaned first). */
static gboolean put_text(mv_index_html *w, const char *s)
{
	if (s == NULL)
		return TRUE;
	char *clean = mv_xml_clean(s);
	char *esc = g_markup_escape_text(clean, -1);
	gboolean ok = put(w, esc);
	g_free(esc);
	g_free(clean);
	return ok;
}

static gboolean put_href(mv_index_html *w, const char *href)
{
	char *esc = g_uri_escape_string(href, "/", FALSE);
	gboolean ok = put(w, "\"") && put(w, esc) && put(w, "\"");
	g_free(esc);
	return ok;
}

static mv_status failed(mv_index_html *w, char **error_r)
{
	return mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", w->path, g_strerror(errno));
}

mv_status mv_index_html_open(const char *path, const char *title, const char *subtitle,
                             mv_index_html **writer_r, char **error_r)
{
	*writer_r = NULL;
	FILE *f = fopen(path, "wbx");
	if (f == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", path, g_strerror(errno));
	mv_index_html *w = g_new0(mv_index_html, 1);
	w->f = f;
	w->path = g_strdup(path);
	*writer_r = w;
	if (!put(w, head_css) || !put(w, "<title>") || !put_text(w, title) ||
	    !put(w, "</title>\n</head>\n<body data-status=\"loading\">\n<h1>") || !put_text(w, title) ||
	    !put(w, "</h1>\n<p class=\"sub\">") || !put_text(w, subtitle) ||
	    !put(w, "</p>\n<div id=\"bar\"><input id=\"filter\" type=\"search\" "
	            "placeholder=\"Filter: any text in a row\" aria-label=\"Filter\">"
	            "<span id=\"count\"></span></div>\n"
	            "<table id=\"docs\">\n<thead><tr><th>Date (UTC)</th><th>From</th><th>To</th>"
	            "<th>Bcc (header and envelope)</th><th>Subject</th><th data-type=\"num\">Attachments</th><th>Class</th>"
	            "<th>Registration</th><th>Files</th></tr></thead>\n<tbody>\n"))
		return failed(w, error_r);
	return MV_OK;
}

mv_status mv_index_html_row(mv_index_html *w, const mv_index_row *r, char **error_r)
{
	char n[24];
	g_snprintf(n, sizeof n, "%" G_GINT64_FORMAT, r->attachments);
	gboolean ok = put(w, "<tr><td class=\"d\" data-v=\"") && put_text(w, r->date != NULL ? r->date : "") &&
	              put(w, "\">") && put_text(w, r->date) && put(w, "</td><td>") &&
	              put_text(w, r->from) && put(w, "</td><td>") && put_text(w, r->to) &&
	              put(w, "</td><td>") && put_text(w, r->bcc) &&
	              put(w, "</td><td><a href=") && put_href(w, r->text_href) && put(w, ">") &&
	              put_text(w, r->subject != NULL && *r->subject != '\0' ? r->subject : "(no subject)") &&
	              put(w, "</a>") &&
	              (r->extracted == NULL ||
	               (put(w, "<details class=\"x\"><summary>Extracted text of attachments</summary>"
	                       "<pre>") &&
	                put_text(w, r->extracted) && put(w, "</pre></details>"))) &&
	              put(w, "</td><td class=\"n\">") && put(w, n) && put(w, "</td><td>") &&
	              put_text(w, r->retention_class) && put(w, "</td><td class=\"r\">") &&
	              put_text(w, r->registration) && put(w, "</td><td class=\"files\">");
	for (guint i = 0; ok && i < r->n_links; i++)
		ok = put(w, "<a href=") && put_href(w, r->links[i].href) && put(w, ">") &&
		     put_text(w, r->links[i].label) && put(w, "</a>");
	ok = ok && put(w, "</td></tr>\n");
	if (!ok)
		return failed(w, error_r);
	w->rows++;
	return MV_OK;
}

guint64 mv_index_html_bytes(const mv_index_html *w)
{
	long pos = ftell(w->f);
	return pos > 0 ? (guint64)pos : 0;
}

mv_status mv_index_html_close(mv_index_html **wp, char **error_r)
{
	mv_index_html *w = *wp;
	mv_status st = MV_OK;
	if (!put(w, "</tbody>\n</table>\n") || !put(w, script) || !put(w, "</body>\n</html>\n"))
		st = failed(w, error_r);
	if (fclose(w->f) != 0 && st == MV_OK)
		st = failed(w, error_r);
	w->f = NULL;
	mv_index_html_abort(wp);
	return st;
}

void mv_index_html_abort(mv_index_html **wp)
{
	if (wp == NULL || *wp == NULL)
		return;
	mv_index_html *w = *wp;
	*wp = NULL;
	if (w->f != NULL)
		fclose(w->f);
	g_free(w->path);
	g_free(w);
}
