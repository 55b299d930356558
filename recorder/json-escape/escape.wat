;; JSON string escaping of UTF-8 bytes, 16 bytes at a time with WebAssembly SIMD.
;;
;; escape(src, len, dst) writes the body of a JSON string (no quotes) for the `len` bytes at
;; `src` to `dst` and returns the end of what it wrote. Only `"`, `\` and bytes below 0x20 are
;; escaped, exactly as JSON.stringify does: `\b \t \n \f \r \" \\` and `\u00xx` (lower-case hex)
;; for the other control bytes. Every other byte is copied unchanged, so valid UTF-8 in gives the
;; same bytes as JSON.stringify of its decoded text (valid UTF-8 never holds a lone surrogate).
;;
;; Memory layout (the caller keeps to it): bytes 0..1023 hold the escape table (8 bytes per byte
;; value 0..92: the length of its escape, then the escape itself); input and output regions are
;; placed by the caller above 1024. The output region needs 6 * len + 16 bytes: a block is always
;; stored whole and an escape is always stored as 8 bytes, then the end pointer moves only by what
;; counts.
;;
;; Rebuild escape.wasm after editing: npm run build:wasm
(module
  (memory (export "memory") 1)

  ;; byte value c -> entry at c * 8: [length, escape bytes...]
  (data (i32.const 0)
    "\06\5cu0000\00" "\06\5cu0001\00" "\06\5cu0002\00" "\06\5cu0003\00"
    "\06\5cu0004\00" "\06\5cu0005\00" "\06\5cu0006\00" "\06\5cu0007\00"
    "\02\5cb\00\00\00\00\00" "\02\5ct\00\00\00\00\00" "\02\5cn\00\00\00\00\00" "\06\5cu000b\00"
    "\02\5cf\00\00\00\00\00" "\02\5cr\00\00\00\00\00" "\06\5cu000e\00" "\06\5cu000f\00"
    "\06\5cu0010\00" "\06\5cu0011\00" "\06\5cu0012\00" "\06\5cu0013\00"
    "\06\5cu0014\00" "\06\5cu0015\00" "\06\5cu0016\00" "\06\5cu0017\00"
    "\06\5cu0018\00" "\06\5cu0019\00" "\06\5cu001a\00" "\06\5cu001b\00"
    "\06\5cu001c\00" "\06\5cu001d\00" "\06\5cu001e\00" "\06\5cu001f\00")
  (data (i32.const 272) "\02\5c\22\00\00\00\00\00")   ;; 34 * 8: \"
  (data (i32.const 736) "\02\5c\5c\00\00\00\00\00")   ;; 92 * 8: \\

  ;; Writes the escape of byte c at o; returns the new end.
  (func $emit (param $c i32) (param $o i32) (result i32)
    (local $e i32)
    (local.set $e (i32.shl (local.get $c) (i32.const 3)))
    (i64.store align=1 (local.get $o) (i64.load offset=1 align=1 (local.get $e)))
    (i32.add (local.get $o) (i32.load8_u (local.get $e))))

  ;; 1 for bytes that need escaping.
  (func $special (param $c i32) (result i32)
    (i32.or
      (i32.lt_u (local.get $c) (i32.const 0x20))
      (i32.or (i32.eq (local.get $c) (i32.const 0x22)) (i32.eq (local.get $c) (i32.const 0x5c)))))

  (func (export "escape") (param $src i32) (param $len i32) (param $dst i32) (result i32)
    (local $end i32) (local $v v128) (local $m v128) (local $k i32) (local $c i32)
    (local.set $end (i32.add (local.get $src) (local.get $len)))
    ;; Whole blocks of 16.
    (block $tail
      (loop $blocks
        (br_if $tail (i32.gt_u (i32.add (local.get $src) (i32.const 16)) (local.get $end)))
        (local.set $v (v128.load align=1 (local.get $src)))
        (local.set $m
          (v128.or
            (i8x16.lt_u (local.get $v) (i8x16.splat (i32.const 0x20)))
            (v128.or
              (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x22)))
              (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x5c))))))
        (v128.store align=1 (local.get $dst) (local.get $v))
        (if (v128.any_true (local.get $m))
          (then
            ;; Keep the bytes before the first special one, escape it, go on right after it.
            (local.set $k (i32.ctz (i8x16.bitmask (local.get $m))))
            (local.set $src (i32.add (local.get $src) (local.get $k)))
            (local.set $dst
              (call $emit (i32.load8_u (local.get $src)) (i32.add (local.get $dst) (local.get $k))))
            (local.set $src (i32.add (local.get $src) (i32.const 1))))
          (else
            (local.set $src (i32.add (local.get $src) (i32.const 16)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))))
        (br $blocks)))
    ;; The last bytes, one at a time.
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $src)))
        (if (call $special (local.get $c))
          (then (local.set $dst (call $emit (local.get $c) (local.get $dst))))
          (else
            (i32.store8 (local.get $dst) (local.get $c))
            (local.set $dst (i32.add (local.get $dst) (i32.const 1)))))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (br $bytes)))
    (local.get $dst)))
