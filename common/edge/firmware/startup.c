/* Reset and fault handlers and the vector table of the early-exit firmware (Cortex-M, no RTOS): copy .data,
   zero .bss, run the C++ constructors, then main; its return value ends the emulation (semihosting exit). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern int main(void);
extern void __libc_init_array(void);

void Reset_Handler(void) {
  uint32_t *src = &__data_load, *dst = &__data_start;
  while (dst < &__data_end) *dst++ = *src++;
  for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
  __libc_init_array();
  exit(main());
}

/* what the C runtime's start files would give (linked with -nostartfiles: this file is the start-up) */
void *__dso_handle = 0;
void _init(void) {}
void _fini(void) {}

void Fault_Handler(void) { exit(98); } /* a fault ends the emulation with a code the host reads */

__attribute__((section(".vectors"), used)) const void *const g_vectors[16] = {
    &__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler};
