;; wordcount.wat: a WASI preview 1 command that counts the words on its
;; stdin (runs of bytes other than space, tab, CR and LF) and writes the
;; count in decimal, with a newline, to stdout.
;;
;; Build: nothing to build. Hypha compiles the text format as it is;
;; `wat2wasm wordcount.wat` (Debian's `wabt`) gives the binary format,
;; which runs the same.
;; Run:   hypha put wordcount.wat apps/wordcount.wat
;;        hypha jobs submit -q demo -k wasm -a module=apps/wordcount.wat \
;;          --file some/stored/text.txt --wait
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 0..8: iovec; 8..12: bytes read or written; 16..48: digits;
  ;; 1024..66560: the read buffer.
  (func $is_space (param $b i32) (result i32)
    (i32.or
      (i32.or (i32.eq (local.get $b) (i32.const 32)) (i32.eq (local.get $b) (i32.const 9)))
      (i32.or (i32.eq (local.get $b) (i32.const 10)) (i32.eq (local.get $b) (i32.const 13)))))
  (func (export "_start")
    (local $words i64) (local $in_word i32) (local $n i32) (local $i i32)
    (local $b i32) (local $at i32)
    (block $eof
      (loop $read
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (local.set $i (i32.const 0))
        (loop $scan
          (local.set $b (i32.load8_u (i32.add (i32.const 1024) (local.get $i))))
          (if (call $is_space (local.get $b))
            (then (local.set $in_word (i32.const 0)))
            (else
              (if (i32.eqz (local.get $in_word))
                (then (local.set $words (i64.add (local.get $words) (i64.const 1)))))
              (local.set $in_word (i32.const 1))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $scan (i32.lt_u (local.get $i) (local.get $n))))
        (br $read)))
    ;; Digits right to left, ending at 47, then a newline at 47.
    (i32.store8 (i32.const 47) (i32.const 10))
    (local.set $at (i32.const 47))
    (loop $digit
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $words) (i64.const 10)))))
      (local.set $words (i64.div_u (local.get $words) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $words) (i64.const 0))))
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (i32.sub (i32.const 48) (local.get $at)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
