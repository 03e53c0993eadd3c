/** Ferry's version, reported by agents in hello and by the controller in welcome. */
export const FERRY_VERSION = '0.1.0';
