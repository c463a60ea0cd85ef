/* file.c - the `file` transport: file:///ABSOLUTE/PATH appends one JSON line per attempt
 * (the Standard Webhooks headers, the other headers and the body as signed; the format is
 * in docs/plugins.md) and syncs it (fdatasync) before the attempt completes.
 *
 * The loop never waits for the disk: send() queues the line and a thread of the plugin's
 * own writes and syncs. It takes every attempt queued so far as one batch, appends each
 * file's lines with one write, syncs each file once, then completes the batch's attempts;
 * attempts queued meanwhile make the next batch, so one fdatasync covers as many lines as
 * arrived while the previous one ran. An error (the directory missing or not writable,
 * ENOSPC) fails the attempts of that file with HOOKD_RETRY and the errno text: the schedule
 * retries them. Files are opened per batch, never kept open, so a file moved away or a
 * directory created later is seen at the next batch.
 *
 * Built with nothing but the public header: cc -shared -fPIC -Iinclude -o file.so file.c */
#include <hookd/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

/* A batch's lines of one file go in one writev: IOV_MAX (1024 on Linux) at most. */
#define FILE_IOV_MAX 1024

struct file_job {
	uint64_t token;
	char *path;           /* decoded absolute path */
	char *line;           /* the JSON line, '\n' included */
	size_t len;
	int done;             /* written (or failed) in the current batch */
	int err;              /* errno of the failure, 0 = written and synced */
	struct file_job *next;
};

struct file_state {
	const struct hookd_host *host;
	struct hookd_plugin_ctx *ctx;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct file_job *head, *tail; /* queued, not yet taken by the thread */
	int stop;
	struct hookd_counter *c_lines, *c_syncs, *c_errors;
	struct hookd_transport transport;
};

/* ---- the line ----------------------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(np = realloc(b->p, cap))) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* A JSON string of n bytes of s (UTF-8 passed through, control characters escaped). */
static void buf_json(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t start = 0;
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		buf_add(b, s + start, i - start);
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_add(b, esc, 2);
		} else if (c == '\n') {
			buf_add(b, "\\n", 2);
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			buf_add(b, esc, 6);
		}
		start = i + 1;
	}
	buf_add(b, s + start, n - start);
	buf_add(b, "\"", 1);
}

static const char *header_get(const struct hookd_send *s, const char *name)
{
	for (size_t i = 0; i < s->n_headers; i++)
		if (strcasecmp(s->headers[i].name, name) == 0)
			return s->headers[i].value;
	return "";
}

static bool is_sw_header(const char *name)
{
	return strcasecmp(name, "webhook-id") == 0 || strcasecmp(name, "webhook-timestamp") == 0 ||
	       strcasecmp(name, "webhook-signature") == 0;
}

/* {"body":BODY,"body_length":N,"webhook-id":..,"webhook-timestamp":..,"webhook-signature":..,
 *  "headers":{..},"endpoint_id":..,"delivery_id":..,"attempt":N}\n
 * BODY is the signed bytes as they are (hookd's bodies are one line of JSON), first in the
 * line, so that line[8 : 8 + body_length] are exactly the bytes the signature covers. A
 * body with a line break in it (only JSON whitespace can be one) is written instead as a
 * JSON string, "body_text", so that the file stays one attempt per line. */
static char *file_line(const struct hookd_send *s, size_t *len)
{
	struct buf b = {0};
	char num[32];
	bool one_line = memchr(s->body, '\n', s->body_len) == NULL &&
			memchr(s->body, '\r', s->body_len) == NULL && s->body_len > 0;

	if (one_line) {
		buf_str(&b, "{\"body\":");
		buf_add(&b, s->body, s->body_len);
	} else {
		buf_str(&b, "{\"body_text\":");
		buf_json(&b, s->body, s->body_len);
	}
	snprintf(num, sizeof(num), "%zu", s->body_len);
	buf_str(&b, ",\"body_length\":");
	buf_str(&b, num);
	buf_str(&b, ",\"webhook-id\":");
	buf_json(&b, header_get(s, "webhook-id"), strlen(header_get(s, "webhook-id")));
	buf_str(&b, ",\"webhook-timestamp\":");
	buf_json(&b, header_get(s, "webhook-timestamp"), strlen(header_get(s, "webhook-timestamp")));
	buf_str(&b, ",\"webhook-signature\":");
	buf_json(&b, header_get(s, "webhook-signature"), strlen(header_get(s, "webhook-signature")));
	buf_str(&b, ",\"headers\":{");
	for (size_t i = 0, n = 0; i < s->n_headers; i++) {
		if (is_sw_header(s->headers[i].name))
			continue;
		if (n++)
			buf_str(&b, ",");
		buf_json(&b, s->headers[i].name, strlen(s->headers[i].name));
		buf_str(&b, ":");
		buf_json(&b, s->headers[i].value, strlen(s->headers[i].value));
	}
	buf_str(&b, "},\"endpoint_id\":");
	buf_json(&b, s->endpoint_id, strlen(s->endpoint_id));
	buf_str(&b, ",\"delivery_id\":");
	buf_json(&b, s->delivery_id, strlen(s->delivery_id));
	snprintf(num, sizeof(num), "%u", s->attempt);
	buf_str(&b, ",\"attempt\":");
	buf_str(&b, num);
	buf_str(&b, "}\n");
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* ---- the writer thread -------------------------------------------------------------- */

static void job_free(struct file_job *j)
{
	free(j->path);
	free(j->line);
	free(j);
}

/* Appends the lines of jobs[0..n) (all for one path) and syncs the file once. 0 or an
 * errno. */
static int file_append(const char *path, struct file_job **jobs, size_t n)
{
	struct iovec iov[FILE_IOV_MAX];
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int err = 0;
	if (fd < 0)
		return errno;
	for (size_t i = 0; i < n && !err;) {
		size_t k = 0, total = 0;
		ssize_t w;
		for (; k < FILE_IOV_MAX && i + k < n; k++) {
			iov[k].iov_base = jobs[i + k]->line;
			iov[k].iov_len = jobs[i + k]->len;
			total += jobs[i + k]->len;
		}
		w = writev(fd, iov, (int)k);
		if (w < 0) {
			err = errno == EINTR ? 0 : errno;
			continue;
		}
		if ((size_t)w != total) {
			/* Short write: the disk filled up under us. The partial line stays; a
			 * reader skips a line that does not parse. */
			err = ENOSPC;
			break;
		}
		i += k;
	}
	if (!err && fdatasync(fd) != 0)
		err = errno;
	if (close(fd) != 0 && !err)
		err = errno;
	return err;
}

static void complete_job(struct file_state *st, struct file_job *j)
{
	struct hookd_outcome o = {.size = sizeof(o), .retry_after_ms = -1};
	char msg[300];
	if (j->err) {
		snprintf(msg, sizeof(msg), "cannot append to %s: %s", j->path, strerror(j->err));
		o.result = HOOKD_RETRY;
		o.message = msg;
		st->host->counter_add(st->c_errors, 1);
	} else {
		o.result = HOOKD_SENT;
		st->host->counter_add(st->c_lines, 1);
	}
	st->host->complete(st->ctx, j->token, &o);
}

static void *file_thread(void *arg)
{
	struct file_state *st = arg;
	for (;;) {
		struct file_job *batch, *j;
		size_t n = 0, cap = 0;
		struct file_job **group = NULL;

		pthread_mutex_lock(&st->mu);
		while (!st->head && !st->stop)
			pthread_cond_wait(&st->cv, &st->mu);
		if (st->stop) {
			pthread_mutex_unlock(&st->mu);
			return NULL;
		}
		batch = st->head;
		st->head = st->tail = NULL;
		pthread_mutex_unlock(&st->mu);

		for (j = batch; j; j = j->next)
			cap++;
		group = malloc(cap * sizeof(*group));
		/* One file at a time, in order of first appearance; each file's lines keep the
		 * order they were queued in. */
		for (struct file_job *first = batch; first; first = first->next) {
			if (first->done)
				continue;
			n = 0;
			for (j = first; j; j = j->next)
				if (!j->done && strcmp(j->path, first->path) == 0) {
					if (group)
						group[n++] = j;
					else
						j->err = ENOMEM;
					j->done = 1;
				}
			if (group) {
				int err = file_append(first->path, group, n);
				for (size_t i = 0; i < n; i++)
					group[i]->err = err;
				st->host->counter_add(st->c_syncs, 1);
			}
		}
		free(group);
		while (batch) {
			j = batch;
			batch = j->next;
			complete_job(st, j);
			job_free(j);
		}
	}
}

/* ---- the transport ------------------------------------------------------------------ */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The host has checked "file://" with an empty authority; the path must name a file. */
static int file_check_url(void *state, const char *url, char *err, size_t errlen)
{
	const char *path = url + strlen("file://");
	size_t n = strcspn(path, "?#");
	if (path[n] != '\0') {
		snprintf(err, errlen, "a file URL takes no query or fragment");
		return 1;
	}
	if (n < 2 || path[0] != '/' || path[n - 1] == '/') {
		snprintf(err, errlen, "expected file:///ABSOLUTE/PATH to a file");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		if (path[i] == '%' && (i + 2 >= n || hexval(path[i + 1]) < 0 ||
				       hexval(path[i + 2]) < 0 ||
				       (path[i + 1] == '0' && path[i + 2] == '0'))) {
			snprintf(err, errlen, "the path has a bad %%-escape or %%00");
			return 1;
		}
	return 0;
}

static int file_send(void *state, const struct hookd_send *s)
{
	struct file_state *st = state;
	struct file_job *j = calloc(1, sizeof(*j));
	if (!j)
		return 1;
	j->token = s->token;
	if (!(j->path = strdup(s->path)) || !(j->line = file_line(s, &j->len))) {
		job_free(j);
		return 1;
	}
	pthread_mutex_lock(&st->mu);
	if (st->tail)
		st->tail->next = j;
	else
		st->head = j;
	st->tail = j;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	return 0;
}

/* The host stopped waiting: drop the line if it is still queued (one being written is
 * written; its completion is then ignored by the host). */
static void file_cancel(void *state, uint64_t token)
{
	struct file_state *st = state;
	struct file_job **jp, *gone = NULL, *prev = NULL;
	pthread_mutex_lock(&st->mu);
	for (jp = &st->head; *jp; prev = *jp, jp = &(*jp)->next)
		if ((*jp)->token == token) {
			gone = *jp;
			*jp = gone->next;
			if (st->tail == gone)
				st->tail = prev;
			break;
		}
	pthread_mutex_unlock(&st->mu);
	if (gone)
		job_free(gone);
}

static void file_cleanup(void *state)
{
	struct file_state *st = state;
	if (!st)
		return;
	if (st->thread_started) {
		pthread_mutex_lock(&st->mu);
		st->stop = 1;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
	}
	while (st->head) {
		struct file_job *j = st->head;
		st->head = j->next;
		job_free(j);
	}
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

static int file_init(const struct hookd_host *host, struct hookd_plugin_ctx *ctx, void **state,
		     char *err, size_t errlen)
{
	struct file_state *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return 1;
	}
	st->host = host;
	st->ctx = ctx;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->c_lines = host->counter(ctx, "lines", "Attempts appended and synced");
	st->c_syncs = host->counter(ctx, "syncs", "Files synced (fdatasync), one per file per batch");
	st->c_errors = host->counter(ctx, "errors", "Attempts that could not be appended");
	st->transport = (struct hookd_transport){
		.size = sizeof(st->transport),
		.scheme = "file",
		.needs_address = 0,
		.check_url = file_check_url,
		.send = file_send,
		.cancel = file_cancel,
	};
	if (pthread_create(&st->thread, NULL, file_thread, st) != 0) {
		snprintf(err, errlen, "cannot start the writer thread");
		file_cleanup(st);
		return 1;
	}
	st->thread_started = 1;
	if (host->register_transport(ctx, &st->transport) != 0) {
		file_cleanup(st);
		snprintf(err, errlen, "cannot register the file transport");
		return 1;
	}
	*state = st;
	return 0;
}

HOOKD_PLUGIN_DEFINE(.name = "file", .version = "1.0", .init = file_init,
		    .cleanup = file_cleanup,
		    .description = "file:///PATH: one JSON line per attempt, synced per batch");
