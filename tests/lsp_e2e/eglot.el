;;; eglot.el --- Drives `bake lsp' with Emacs's Eglot, in batch mode  -*- lexical-binding: t -*-
;;
;; Run by tests/lsp_e2e.rs (Emacs 28 + Debian's elpa-eglot 1.9, or Emacs 29+ with Eglot built in):
;;   BAKE_BIN=target/debug/bake BAKE_SPEC=x.kdl BAKE_E2E_OUT=out.json emacs --batch -Q -l eglot.el
;; The set-up is the one docs/editors.md gives: a major mode for .kdl, an `eglot-server-programs' entry and
;; `eglot-ensure'.  Everything observed goes to $BAKE_E2E_OUT as JSON; the Rust test makes the assertions.

(require 'package)
(package-initialize)                    ; Debian's elpa-* packages (eglot 1.9 on Emacs 28)
(require 'eglot)
(require 'json)

(defvar bake-e2e-results nil "Alist of what was observed.")

(defun bake-e2e-put (key value)
  (push (cons key value) bake-e2e-results))

;; --- the configuration docs/editors.md gives ---------------------------------------------------------------------
(unless (fboundp 'kdl-mode)
  (define-derived-mode kdl-mode prog-mode "KDL"
    "Minimal major mode for KDL files."
    (setq-local comment-start "// ")))
(add-to-list 'auto-mode-alist '("\\.kdl\\'" . kdl-mode))
(add-to-list 'eglot-server-programs `(kdl-mode . (,(getenv "BAKE_BIN") "lsp")))
(add-hook 'kdl-mode-hook #'eglot-ensure)

;; --- the session --------------------------------------------------------------------------------------------------
(defun bake-e2e-wait (pred seconds what)
  "Process events until PRED is non-nil, at most SECONDS; error naming WHAT otherwise."
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall pred)) (< (float-time) deadline))
      (accept-process-output nil 0.05)
      ;; Flymake runs its backends from timers; let them fire.
      (sit-for 0))
    (or (funcall pred) (error "Timed out waiting for %s" what))))

(defun bake-e2e-char-column (pos)
  "Characters from the start of POS's line (not display columns: an emoji is one character, two columns wide)."
  (save-excursion (goto-char pos) (- pos (line-beginning-position))))

(defun bake-e2e-diagnostics ()
  (mapcar (lambda (d)
            (let ((beg (flymake-diagnostic-beg d)))
              `((line . ,(1- (line-number-at-pos beg)))
                (col . ,(bake-e2e-char-column beg))
                (end_col . ,(bake-e2e-char-column (flymake-diagnostic-end d)))
                (type . ,(symbol-name (flymake-diagnostic-type d)))
                (text . ,(flymake-diagnostic-text d)))))
          (flymake-diagnostics)))

(defun bake-e2e-main ()
  (bake-e2e-put 'emacs emacs-version)
  (bake-e2e-put 'eglot (if (boundp 'eglot-version) eglot-version
                         (or (ignore-errors (package-desc-version (cadr (assq 'eglot package-alist))))
                             "built in")))
  (find-file (getenv "BAKE_SPEC"))
  (bake-e2e-put 'mode (symbol-name major-mode))
  ;; `eglot-ensure' connects from `post-command-hook'; batch mode has no command loop, so run the hook once.
  (run-hooks 'post-command-hook)
  (bake-e2e-wait (lambda () (eglot-current-server)) 30 "the server to start")
  (bake-e2e-put 'managed (and eglot--managed-mode t))

  ;; 1. Diagnostics on open.
  (bake-e2e-wait (lambda () (flymake-diagnostics)) 30 "diagnostics on open")
  (bake-e2e-put 'open (vconcat (bake-e2e-diagnostics)))

  ;; 2. Hover text (eldoc's source) on a property.
  (goto-char (point-min))
  (search-forward "max-batch")
  (backward-char 3)
  (let ((hover (jsonrpc-request (eglot-current-server) :textDocument/hover
                                (eglot--TextDocumentPositionParams))))
    (bake-e2e-put 'hover (plist-get (plist-get hover :contents) :value)))

  ;; 3. An edit: the server re-diagnoses the new text.
  (goto-char (point-min))
  (search-forward "size min=1 max=2")
  (replace-match "size min=3 max=2")
  ;; Eglot sends the change from an idle timer, which batch mode never runs: send it now.
  (eglot--signal-textDocument/didChange)
  (bake-e2e-wait (lambda () (cl-some (lambda (d) (string-match-p "size_order" (flymake-diagnostic-text d)))
                                     (flymake-diagnostics)))
                 30 "the size_order diagnostic after an edit")
  (bake-e2e-put 'changed (vconcat (bake-e2e-diagnostics)))

  ;; 4. Formatting through the server.
  (eglot-format-buffer)
  (bake-e2e-put 'formatted (vconcat (split-string (buffer-string) "\n")))

  ;; 5. Shutdown by the protocol (`eglot-shutdown' would SIGKILL the process right after `exit'): the server
  ;; answers `shutdown' and exits by itself on `exit'.
  (let* ((server (eglot-current-server))
         (proc (jsonrpc--process server)))
    (jsonrpc-request server :shutdown nil)
    (jsonrpc-notify server :exit nil)
    (bake-e2e-wait (lambda () (not (process-live-p proc))) 10 "the server to exit")
    (bake-e2e-put 'exit_status (process-exit-status proc))))

(let ((ok (condition-case err
              (progn (bake-e2e-main) t)
            (error (bake-e2e-put 'error (error-message-string err)) nil))))
  (with-temp-file (getenv "BAKE_E2E_OUT")
    (insert (json-encode bake-e2e-results)))
  (kill-emacs (if ok 0 1)))
